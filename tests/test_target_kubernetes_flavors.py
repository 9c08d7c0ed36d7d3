"""The Kubernetes target's flavors (KServe, Knative) and autoscalers (requests, KEDA), checked by what
a platform team's cluster would check: each custom resource against its project's CRD schema
(tests/data/crds/, with no field the schema does not know, since the API server would silently
prune it), the built-in kinds with kubernetes-validate --strict 1.29-1.33, every layer built by
kubectl kustomize, checkov with nothing failed; and scale to zero allowed exactly where something
wakes the service."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, ROOT, render_spec, require_tool
from kubernetes_expansion import kubernetes_env, workload_containers
from test_target_kubernetes import CHECKOV_SKIPS, HOSTILE, KUBERNETES_VERSIONS, checkov, docs, kustomize, variant

jsonschema = pytest.importorskip("jsonschema")

RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"
TEMPLATE = "{{ .Name }} {{`x`}} {{{"  # Go text/template's syntax: KServe renders a runtime's container through it
IRIS = EXAMPLES / "iris" / "spec.yaml"
CRDS = ROOT / "tests" / "data" / "crds"
# The Prometheus Operator's kinds have no CRD here (nor in kubernetes-validate): kustomize builds them.
OPERATOR_KINDS = {("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PodMonitor"),
                  ("monitoring.coreos.com", "PrometheusRule")}
# flavor name → --set arguments; each renders recsys (split) and iris (collocated).
FLAVORS = {
    "kserve": ["targets.kubernetes.flavor=kserve"],
    "kserve-zero": ["targets.kubernetes.flavor=kserve", "targets.kubernetes.autoscaling=requests", "scaling.min_replicas=0"],
    "knative": ["targets.kubernetes.flavor=knative"],
    "knative-zero": ["targets.kubernetes.flavor=knative", "targets.kubernetes.autoscaling=requests", "scaling.min_replicas=0"],
    "keda": ["targets.kubernetes.autoscaling=keda"],
    "requests": ["targets.kubernetes.autoscaling=requests"],
}


def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → the openAPIV3Schema of that served version."""
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schemas[f"{group}/{version['name']}", kind] = version["schema"]["openAPIV3Schema"]
    return schemas


SCHEMAS = crd_schemas()


def unknown_fields(value, schema: dict, where: str = "") -> list[str]:
    """Fields the schema does not declare where it declares fields: the API server prunes them
    without a word, so a typo would vanish instead of failing."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{where}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, schema["additionalProperties"], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{where}[{index}]")
    return found


def check_custom_resource(doc: dict, origin: str) -> bool:
    """Validate one document if it is a custom resource with a vendored CRD; False for built-in kinds."""
    schema = SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        return False
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
    assert not errors, f"{origin} {doc['kind']}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    assert not unknown_fields(doc, schema), f"{origin} {doc['kind']} has fields its CRD lacks: {unknown_fields(doc, schema)}"
    return True


def render_with(tmp: Path, spec: Path, sets: list[str], name: str) -> Path:
    """The spec rendered with these --set arguments into tmp/name/kubernetes."""
    return render_spec(spec, "kubernetes", tmp / name, sets=sets)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Each flavor for recsys and iris, and a KServe and a Knative recsys with hostile env values,
    a secret and a GPU."""
    tmp = tmp_path_factory.mktemp("flavors")
    found = {}
    for flavor, sets in FLAVORS.items():
        found[f"recsys-{flavor}"] = render_with(tmp, RECSYS, sets, f"recsys-{flavor}")
        found[f"iris-{flavor}"] = render_with(tmp, IRIS, sets, f"iris-{flavor}")
    data = yaml.safe_load(RECSYS.read_text())
    data.update(HOSTILE, resources={"cpu": "1", "memory": "1Gi", "gpu": 1})
    data["env"] = {**HOSTILE["env"], "TEMPLATE": TEMPLATE}
    hostile = RECSYS.parent / f".test-flavors-{tmp.name}.yaml"
    hostile.write_text(yaml.safe_dump(data))
    try:
        for flavor in ("kserve", "knative"):
            found[f"hostile-{flavor}"] = render_with(tmp, hostile, FLAVORS[flavor], f"hostile-{flavor}")
    finally:
        hostile.unlink()
    return found


@pytest.fixture(scope="module")
def built(bundles, tmp_path_factory) -> dict[str, list[dict]]:
    return {f"{name}:{layer}": kustomize(bundle / layer)
            for name, bundle in bundles.items() for layer in ("base", "overlays/dev", "overlays/prod")}


def base_documents(bundle: Path) -> list[dict]:
    return [doc for path in sorted((bundle / "base").glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in docs(path)]


def test_every_custom_resource_matches_its_crd_and_every_build_too(bundles, built):
    checked = {}
    for name, bundle in bundles.items():
        for doc in base_documents(bundle):
            checked[doc["kind"]] = checked.get(doc["kind"], 0) + check_custom_resource(doc, name)
    for key, documents in built.items():
        for doc in documents:
            check_custom_resource(doc, key)
    assert {kind: checked[kind] > 0 for kind in ("InferenceService", "ServingRuntime", "Service", "ScaledObject")} == {
        "InferenceService": True, "ServingRuntime": True, "Service": True, "ScaledObject": True}


def test_built_in_kinds_pass_kubernetes_validate_strict(bundles, built, tmp_path):
    validate = require_tool("kubernetes-validate")
    files = []
    layers = [(name, base_documents(bundle)) for name, bundle in bundles.items()] + list(built.items())
    for name, documents in layers:
        kept = [d for d in documents if (d["apiVersion"], d["kind"]) not in SCHEMAS
                and (d["apiVersion"].split("/")[0], d["kind"]) not in OPERATOR_KINDS]
        assert kept, name  # the namespace, service account, config map and policies at least
        path = tmp_path / f"{len(files)}.yaml"
        path.write_text(yaml.safe_dump_all(kept))
        files.append(str(path))
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", *files],
                                capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, f"{version}:\n{output}"


def kinds(documents: list[dict]) -> set[str]:
    return {d["kind"] for d in documents}


def test_each_flavor_renders_its_own_objects_and_no_autoscaler_that_would_fight_it(built):
    assert {"InferenceService", "ServingRuntime"} <= kinds(built["recsys-kserve:base"])
    assert not {"Deployment", "HorizontalPodAutoscaler", "Ingress"} & kinds(built["recsys-kserve:base"])
    knative = [d for d in built["recsys-knative:base"] if d["apiVersion"] == "serving.knative.dev/v1"]
    assert sorted(d["metadata"]["name"] for d in knative) == [
        "recsys-gateway", "recsys-postprocess", "recsys-predict", "recsys-preprocess"]
    assert not {"Deployment", "HorizontalPodAutoscaler"} & kinds(built["recsys-knative:base"])
    # Knative keeps the stages off the outside network; only the gateway is public.
    assert {d["metadata"]["name"] for d in knative
            if d["metadata"]["labels"].get("networking.knative.dev/visibility") == "cluster-local"} == {
        "recsys-preprocess", "recsys-predict", "recsys-postprocess"}
    keda = built["recsys-keda:base"]
    assert "HorizontalPodAutoscaler" not in kinds(keda)  # KEDA makes its own; a second one would fight it
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in keda if d["kind"] == "ScaledObject"}
    assert scaled == {d["metadata"]["name"] for d in keda if d["kind"] == "Deployment"}
    (podmonitor,) = [d for d in built["recsys-knative:base"] if d["kind"] == "PodMonitor"]
    assert podmonitor["spec"]["podMetricsEndpoints"] == [{"port": "http1", "path": "/metrics", "interval": "30s"}]


def test_overlays_change_the_replicas_where_each_flavor_keeps_them(built):
    def knative_scale(key):
        return {d["metadata"]["name"]: (d["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"],
                                        d["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"])
                for d in built[key] if d["kind"] == "Service" and d["apiVersion"].startswith("serving.knative.dev")}

    assert set(knative_scale("recsys-knative:base").values()) == {("1", "6")}
    assert set(knative_scale("recsys-knative:overlays/dev").values()) == {("1", "1")}
    assert set(knative_scale("recsys-knative:overlays/prod").values()) == {("2", "6")}
    assert set(knative_scale("recsys-knative-zero:overlays/prod").values()) == {("0", "6")}  # idle costs nothing in prod too

    def kserve_scale(key):
        (isvc,) = [d for d in built[key] if d["kind"] == "InferenceService"]
        return {c: (isvc["spec"][c]["minReplicas"], isvc["spec"][c]["maxReplicas"]) for c in ("predictor", "transformer")}

    assert kserve_scale("recsys-kserve:overlays/dev") == {"predictor": (1, 1), "transformer": (1, 1)}
    assert kserve_scale("recsys-kserve-zero:overlays/dev") == {"predictor": (0, 1), "transformer": (0, 1)}
    (isvc,) = [d for d in built["recsys-kserve:overlays/dev"] if d["kind"] == "InferenceService"]
    assert isvc["spec"]["predictor"]["model"]["resources"]["requests"] == {"cpu": "125m", "memory": "256Mi"}
    assert {c["resources"]["requests"]["cpu"] for c in isvc["spec"]["transformer"]["containers"]} == {"125m"}

    counts = {(d["spec"]["minReplicaCount"], d["spec"]["maxReplicaCount"])
              for d in built["recsys-keda:overlays/prod"] if d["kind"] == "ScaledObject"}
    assert counts == {(2, 6)}


def test_autoscaling_settings_reach_the_platform(built):
    (isvc,) = [d for d in built["recsys-kserve:base"] if d["kind"] == "InferenceService"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert (isvc["spec"]["predictor"]["scaleMetric"], isvc["spec"]["predictor"]["scaleTarget"]) == ("cpu", 60)
    (isvc,) = [d for d in built["recsys-kserve-zero:base"] if d["kind"] == "InferenceService"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert (isvc["spec"]["predictor"]["scaleMetric"], isvc["spec"]["predictor"]["scaleTarget"]) == ("concurrency", 10)
    assert isvc["spec"]["predictor"]["minReplicas"] == 0
    for document in built["recsys-knative-zero:base"]:
        if document["apiVersion"] == "serving.knative.dev/v1":
            annotations = document["spec"]["template"]["metadata"]["annotations"]
            assert {k: annotations[k] for k in annotations if k.startswith("autoscaling.")} == {
                "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                "autoscaling.knative.dev/metric": "concurrency", "autoscaling.knative.dev/target": "10",
                "autoscaling.knative.dev/min-scale": "0", "autoscaling.knative.dev/max-scale": "6"}
    hpas = [d for d in built["recsys-requests:base"] if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpas and all(h["spec"]["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": "mlgen_requests_in_flight"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]
        for h in hpas)


def test_checkov_finds_nothing_to_fail_in_any_flavor(bundles, built, tmp_path):
    paths = []
    for key, documents in built.items():
        path = tmp_path / f"{key.replace(':', '-').replace('/', '-')}.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        paths.append(path)
    plain = [p for p in paths if not p.name.startswith("hostile")]
    summary = checkov(plain, "kubernetes", {})
    assert summary["resources"] >= 150 and summary["passed"] > 1000, summary  # checkov really parsed them
    hostile = checkov([p for p in paths if p.name.startswith("hostile")], "kubernetes", CHECKOV_SKIPS)
    assert hostile["resources"] >= 20, hostile


def test_every_flavor_hands_the_process_the_spec_env_with_secrets_as_references(bundles):
    expected = {**HOSTILE["env"], "TEMPLATE": TEMPLATE}
    for flavor in ("kserve", "knative"):
        # The ServingRuntime's container goes through KServe's templating before the kubelet's.
        containers = [c for d in base_documents(bundles[f"hostile-{flavor}"]) for c in workload_containers(d)]
        assert len(containers) == 4  # three in KServe's transformer and the runtime's; Knative's four stages
        for container in containers:
            assert kubernetes_env(container) == expected, (flavor, container["name"])
            secret = next(e for e in container["env"] if e["name"] == "DB_PASSWORD")
            assert secret["valueFrom"] == {"secretKeyRef": {"name": "recsys-db", "key": "password"}}
            security = container["securityContext"]
            assert security["runAsNonRoot"] and security["runAsUser"] >= 10000 and not security["allowPrivilegeEscalation"]
            assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # Only the stage that runs the model asks for the GPU.
    gpus = {c["name"] for d in base_documents(bundles["hostile-kserve"]) for c in workload_containers(d)
            if "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})}
    assert gpus == set()  # KServe's predictor asks on its model, not on the runtime's container
    (isvc,) = [d for d in base_documents(bundles["hostile-kserve"]) if d["kind"] == "InferenceService"]
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "tolerations" in isvc["spec"]["predictor"] and "tolerations" not in isvc["spec"]["transformer"]


def problems_for(spec: Path, sets: list[str]):
    from mlgen.errors import MlgenError
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    try:
        return [p for p in plan_target(load_spec(spec, sets=tuple(sets)), "kubernetes", Renderer()).warnings
                if (p.field or "").startswith("scaling")]
    except MlgenError as error:
        return error.problems


@pytest.mark.parametrize("sets, wakes", [
    (["targets.kubernetes.flavor=knative", "targets.kubernetes.autoscaling=requests"], True),
    (["targets.kubernetes.flavor=kserve", "targets.kubernetes.autoscaling=requests"], True),
    (["targets.kubernetes.autoscaling=keda",
      'targets.kubernetes.keda.query=sum(rate(nginx_ingress_controller_requests{exported_service="iris"}[2m]))'], True),
    ([], False),
    (["targets.kubernetes.flavor=knative"], False),
    (["targets.kubernetes.flavor=kserve"], False),
    (["targets.kubernetes.autoscaling=requests"], False),
    (["targets.kubernetes.autoscaling=keda"], False),
])
def test_scale_to_zero_is_allowed_exactly_where_something_wakes_the_service(sets, wakes, tmp_path):
    spec = variant(tmp_path, IRIS, scaling={"min_replicas": 0, "max_replicas": 3})
    try:
        problems = problems_for(spec, sets)
    finally:
        spec.unlink()
    if wakes:
        assert problems == [], [p.render() for p in problems]
        return
    (problem,) = problems
    assert problem.field == "scaling.min_replicas" and problem.level.name == "ERROR"
    assert problem.file == str(spec) and problem.line is not None  # at the spec line that asked for it
    assert "autoscaling: requests with flavor: knative or kserve" in problem.hint


def test_keda_with_knative_or_kserve_is_refused_naming_the_flavor_that_takes_it():
    for flavor in ("knative", "kserve"):
        (problem,) = problems_for(IRIS, [f"targets.kubernetes.flavor={flavor}", "targets.kubernetes.autoscaling=keda"])
        assert problem.field == "targets.kubernetes.autoscaling" and "flavor: deployment" in problem.hint
