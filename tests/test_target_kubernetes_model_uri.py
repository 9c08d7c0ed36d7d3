"""A Kubernetes bundle whose model is fetched from `model.uri`, in every flavor (Deployments, KServe
in both modes, Knative, KEDA): the stage that loads the model, and only it, gets a cache on an
emptyDir where MLGEN_MODEL_CACHE points (the root file system stays read-only), a startup allowance
for the download and HTTPS egress to the store; the ServiceAccount carries the platform identity;
a model in a cloud store without one is a warning naming the annotation that cloud wants
(tests/test_model_rollback.py checks that two model versions render the same bundle but for the
URI, hash and version). Checked as the other
Kubernetes tests check: kubernetes-validate --strict, kubectl kustomize, checkov with nothing
failed, and the vendored CRD schemas. The spec's egress destinations, version and instance labels
and the Ingress's TLS are checked here too."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool
from test_target_kubernetes import KUBERNETES_VERSIONS, checkov, kustomize
from test_target_kubernetes_flavors import OPERATOR_KINDS, SCHEMAS, check_custom_resource

IRIS = EXAMPLES / "iris" / "spec.yaml"
RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"
MIB = 1 << 20
AWS_ROLE = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/iris-model-reader"}
GKE_ACCOUNT = {"iam.gke.io/gcp-service-account": "recsys-reader@acme-ml.iam.gserviceaccount.com"}
AZURE_CLIENT = {"azure.workload.identity/client-id": "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"}
FLAVORS = {
    "deployment": [],
    "kserve": ["targets.kubernetes.flavor=kserve"],
    "kserve-zero": ["targets.kubernetes.flavor=kserve", "targets.kubernetes.autoscaling=requests", "scaling.min_replicas=0"],
    "knative": ["targets.kubernetes.flavor=knative"],
    "keda": ["targets.kubernetes.autoscaling=keda"],
}
STARTUP_FLOOR = 60  # periods of 5 s: what a model in the image gets


def flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()


def iris_from_s3(folder: Path) -> Path:
    """The iris example with its model (the same file: the same sha256) kept in S3 instead of the
    bundle, as a training pipeline publishes it; a uri spec needs no file beside it."""
    data = yaml.safe_load(IRIS.read_text())
    data["metadata"]["name"] = "iris-s3"
    data["model"].pop("path")
    data["model"].update(uri="s3://acme-ml-models/iris/2026-11-30/model.joblib", version="2026-11-30", max_size="64Mi")
    data["targets"] = {"kubernetes": data["targets"]["kubernetes"]}
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def recsys_from_gcs(tmp: Path) -> Path:
    """The recsys pipeline (split stages) with its model in Cloud Storage, beside its handlers."""
    data = yaml.safe_load(RECSYS.read_text())
    data["model"].pop("path")
    data["model"]["uri"] = "gs://acme-ml-models/recsys/2.1.0/model.joblib"
    data["targets"]["kubernetes"].update(
        service_account_annotations=GKE_ACCOUNT, egress=[{"cidr": "10.20.0.0/16", "ports": [{"port": 5432}]}],
        ingress={"host": "recsys.example.com", "cluster_issuer": "letsencrypt-prod"})
    spec = RECSYS.parent / f".test-uri-{tmp.name}.yaml"
    spec.write_text(yaml.safe_dump(data))
    return spec


@pytest.fixture(scope="module")
def iris_s3(tmp_path_factory) -> Path:
    return iris_from_s3(tmp_path_factory.mktemp("iris-s3"))


@pytest.fixture(scope="module")
def bundles(iris_s3, tmp_path_factory) -> dict[str, Path]:
    """iris-s3 with an IRSA role and recsys from Cloud Storage with GKE Workload Identity, each in
    every flavor; iris from Azure Blob with Azure Workload Identity as Deployments."""
    tmp = tmp_path_factory.mktemp("model-uri")
    found = {}
    recsys = recsys_from_gcs(tmp)
    try:
        for flavor, sets in FLAVORS.items():
            found[f"iris-{flavor}"] = render_spec(iris_s3, "kubernetes", tmp / f"iris-{flavor}", sets=[
                *sets, f"targets.kubernetes.service_account_annotations={flow(AWS_ROLE)}"])
            found[f"recsys-{flavor}"] = render_spec(recsys, "kubernetes", tmp / f"recsys-{flavor}", sets=sets)
    finally:
        recsys.unlink()
    found["iris-azure"] = render_spec(iris_s3, "kubernetes", tmp / "iris-azure", sets=[
        "model.uri=https://acmemodels.blob.core.windows.net/models/iris/model.joblib",
        f"targets.kubernetes.service_account_annotations={flow(AZURE_CLIENT)}"])
    return found


@pytest.fixture(scope="module")
def built(bundles) -> dict[str, list[dict]]:
    return {f"{name}:{layer}": kustomize(bundle / layer)
            for name, bundle in bundles.items() for layer in ("base", "overlays/dev", "overlays/prod")}


def test_every_layer_passes_kubernetes_validate_and_every_custom_resource_its_crd(built, tmp_path):
    validate = require_tool("kubernetes-validate")
    files, custom = [], 0
    for key, documents in built.items():
        custom += sum(check_custom_resource(doc, key) for doc in documents)
        kept = [d for d in documents if (d["apiVersion"], d["kind"]) not in SCHEMAS
                and (d["apiVersion"].split("/")[0], d["kind"]) not in OPERATOR_KINDS]
        path = tmp_path / f"{len(files)}.yaml"
        path.write_text(yaml.safe_dump_all(kept))
        files.append(str(path))
    assert custom >= 30  # InferenceServices, ServingRuntimes, Knative Services, ScaledObjects
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", *files],
                                capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, f"{version}:\n{output}"


def test_checkov_finds_nothing_to_fail(built, tmp_path):
    paths = []
    for key, documents in built.items():
        path = tmp_path / f"{key.replace(':', '-').replace('/', '-')}.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        paths.append(path)
    summary = checkov(paths, "kubernetes", {})
    assert summary["resources"] >= 200 and summary["passed"] > 1000, summary


def pods(documents: list[dict]) -> list[tuple[str, dict, dict, dict]]:
    """(stage, pod-level labels, annotations, pod spec) of every pod a flavor's objects make."""
    found = []
    for doc in documents:
        kind, spec = doc["kind"], doc.get("spec") or {}
        if kind == "Deployment" or (kind == "Service" and doc["apiVersion"].startswith("serving.knative.dev")):
            meta = spec["template"]["metadata"]
            found.append((meta["labels"]["app.kubernetes.io/component"], meta["labels"], meta["annotations"],
                          spec["template"]["spec"]))
        elif kind == "ServingRuntime":  # the predictor's pod: the runtime's container and volumes
            isvc = next(d for d in documents if d["kind"] == "InferenceService")["spec"]["predictor"]
            found.append((isvc["labels"]["app.kubernetes.io/component"], isvc["labels"], isvc["annotations"], spec))
        elif kind == "InferenceService" and "transformer" in spec:
            component = spec["transformer"]
            found.append(("gateway", component["labels"], component["annotations"], component))
    return found


def test_only_the_stage_that_loads_the_model_gets_the_cache_the_startup_allowance_and_the_store(bundles, built):
    for name, bundle in bundles.items():
        documents = built[f"{name}:base"]
        max_bytes = 64 * MIB if name.startswith("iris") else 2048 * MIB  # model.max_size: 64Mi, the default 2Gi
        startup_s = 300 + math.ceil(max_bytes / (10 * MIB)) + 97
        loaders = 0
        for stage, _labels, pod_annotations, pod in pods(documents):
            loads = stage in ("predict", "server")
            for container in pod["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
                if not loads or container["name"] in ("preprocess", "postprocess"):  # KServe's transformer sidecars
                    assert "MLGEN_MODEL_CACHE" not in env and "model-cache" not in mounts, (name, stage)
                    continue
                loaders += 1
                assert env["MLGEN_MODEL_CACHE"] == mounts["model-cache"] == "/model-cache", name
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                if "startupProbe" in container:
                    assert container["startupProbe"]["failureThreshold"] == math.ceil(startup_s / 5), name
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            assert ("model-cache" in volumes) == loads, (name, stage)
            if loads:
                # runtime.workers (1) downloads side by side, plus one left by a killed container.
                assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": f"{2 * max_bytes // MIB}Mi"}, name
            knative = "knative" in name or name.endswith("kserve-zero")
            deadline = pod_annotations.get("serving.knative.dev/progress-deadline")
            # Knative's progress deadline stands for the startup probe there: never below its default 600 s.
            assert deadline == (f"{max(startup_s, 600)}s" if knative and loads else None), (name, stage)
        assert loaders == 1, name
        # Stages that do not load the model keep the startup they had.
        for doc in documents:
            if doc["kind"] == "Deployment" and doc["spec"]["template"]["metadata"]["labels"][
                    "app.kubernetes.io/component"] not in ("predict", "server"):
                probe = doc["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
                assert probe["failureThreshold"] == STARTUP_FLOOR


def policies(documents: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}


def test_only_the_loading_stage_may_reach_the_store_and_the_handlers_their_database(built):
    for key in ("iris-deployment:base", "recsys-deployment:base", "recsys-kserve:base", "recsys-knative:base"):
        found = policies(built[key])
        service = key.split("-")[0]
        store = found[f"{'iris-s3' if service == 'iris' else 'recsys'}-model-store"]
        stage = "server" if service == "iris" else "predict"
        assert store["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == stage, key
        assert store["policyTypes"] == ["Egress"] and "ingress" not in store
        https, *metadata = store["egress"]
        assert https == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                         "ports": [{"protocol": "TCP", "port": 443}]}
        # GKE Workload Identity: the pod asks the GKE metadata server for its token.
        assert [(r["to"][0]["ipBlock"]["cidr"], r["ports"][0]["port"]) for r in metadata] == (
            [("169.254.169.254/32", 80), ("169.254.169.252/32", 988)] if service == "recsys" else [])
        if service == "recsys":
            egress = found["recsys-egress"]
            assert egress["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "recsys"}
            assert egress["egress"] == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                                         "ports": [{"protocol": "TCP", "port": 5432}]}]
        # DNS stays allowed for every pod.
        assert any(p["egress"][0]["ports"][0]["port"] == 53 for p in found.values() if "egress" in p)


def test_the_service_account_carries_the_identity_and_azure_pods_its_label(built):
    def account(key):
        (sa,) = [d for d in built[key] if d["kind"] == "ServiceAccount"]
        return sa

    assert account("iris-deployment:base")["metadata"]["annotations"] == AWS_ROLE
    assert account("recsys-kserve:base")["metadata"]["annotations"] == GKE_ACCOUNT
    assert account("iris-azure:base")["metadata"]["annotations"] == AZURE_CLIENT
    assert all(sa["automountServiceAccountToken"] is False for sa in map(account, built))
    for key, documents in built.items():
        labelled = {stage: labels.get("azure.workload.identity/use") for stage, labels, _, _ in pods(documents)}
        assert set(labelled.values()) == ({"true"} if key.startswith("iris-azure") else {None}), key


def test_versions_and_instances_label_every_object_but_no_selector(built):
    for key, documents in built.items():
        version = "2026-11-30" if key.startswith("iris") else "2.1.0"
        environment = key.rsplit("/", 1)[-1] if "overlays" in key else None
        for doc in documents:
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/version"] == version, (key, doc["kind"])
            assert labels["app.kubernetes.io/instance"].startswith(("iris-s3", "recsys")), (key, doc["kind"])
            if environment:  # each overlay is its own instance of the service
                assert labels["app.kubernetes.io/instance"].endswith(f"-{environment}"), (key, doc["kind"])
            for selector in selectors(doc):
                assert not {"app.kubernetes.io/version", "app.kubernetes.io/instance"} & set(selector), (key, doc["kind"])


def selectors(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    found = []
    if doc["kind"] in ("Deployment", "PodDisruptionBudget"):
        found.append(spec["selector"]["matchLabels"])
    if doc["kind"] == "Service" and doc["apiVersion"] == "v1":
        found.append(spec["selector"])
    if doc["kind"] == "NetworkPolicy":
        found.append(spec["podSelector"]["matchLabels"])
    if doc["kind"] in ("ServiceMonitor", "PodMonitor"):
        found.append(spec["selector"]["matchLabels"])
    return found


def test_the_ingress_gets_its_certificate_from_cert_manager(built):
    (ingress,) = [d for d in built["recsys-deployment:base"] if d["kind"] == "Ingress"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
    assert ingress["spec"]["tls"] == [{"hosts": ["recsys.example.com"], "secretName": "recsys-tls"}]


def plan_problems(spec: Path, *sets: str):
    from mlgen.errors import MlgenError
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    try:
        return list(plan_target(load_spec(spec, sets=sets), "kubernetes", Renderer()).warnings)
    except MlgenError as error:
        return list(error.problems)


@pytest.mark.parametrize("uri, annotation, identity", [
    ("s3://acme-ml-models/iris/model.joblib", "eks.amazonaws.com/role-arn", "IRSA"),
    ("gs://acme-ml-models/iris/model.joblib", "iam.gke.io/gcp-service-account", "GKE Workload Identity"),
    ("https://acmemodels.blob.core.windows.net/models/iris.joblib", "azure.workload.identity/client-id",
     "Azure Workload Identity"),
])
def test_a_cloud_model_without_an_identity_is_a_warning_naming_the_annotation_its_cloud_wants(iris_s3, uri, annotation,
                                                                                            identity):
    (problem,) = [p for p in plan_problems(iris_s3, f"model.uri={uri}") if p.field == "targets.kubernetes"]
    assert problem.level.name == "WARNING" and problem.line is not None
    assert annotation in problem.hint and identity in problem.hint, problem.hint
    assert not [p for p in plan_problems(iris_s3, f"model.uri={uri}") if p.field == "model.uri"]


def test_the_right_identity_silences_the_warning_and_another_clouds_says_how_to_get_credentials(iris_s3):
    fields = [p.field for p in plan_problems(iris_s3, f"targets.kubernetes.service_account_annotations={flow(AWS_ROLE)}")]
    assert "targets.kubernetes" not in fields and "model.uri" not in fields
    (foreign,) = [p for p in plan_problems(iris_s3, f"targets.kubernetes.service_account_annotations={flow(GKE_ACCOUNT)}")
                  if p.field == "model.uri"]
    assert "kubernetes on gcp has no identity that reads s3 storage" in foreign.message and foreign.level.name == "WARNING"


@pytest.mark.parametrize("annotations, field", [
    ({"eks.amazonaws.com/role-arn": "arn:aws:iam::12345:role/x"}, "eks.amazonaws.com/role-arn"),
    ({"iam.gke.io/gcp-service-account": "reader@example.com"}, "iam.gke.io/gcp-service-account"),
    ({"azure.workload.identity/client-id": "not-a-uuid"}, "azure.workload.identity/client-id"),
    ({"Bad Key": "x"}, "service_account_annotations"),
    ({"example.com/note": "two\nlines"}, "example.com/note"),
])
def test_identity_annotations_are_checked_at_their_line(iris_s3, annotations, field):
    (problem,) = [p for p in plan_problems(iris_s3, f"targets.kubernetes.service_account_annotations={flow(annotations)}")
                  if p.level.name == "ERROR"]
    assert field in problem.field and problem.file.startswith("--set"), problem.render()  # located at the --set


def test_egress_and_ingress_mistakes_are_located(iris_s3):
    bad = plan_problems(iris_s3, 'targets.kubernetes.egress=[{cidr: 10.20.0.1/16, ports: [{port: 5432}]}]')
    (problem,) = [p for p in bad if p.level.name == "ERROR"]
    assert problem.field.startswith("targets.kubernetes.egress")
    assert "host bits set" in problem.message and problem.file.startswith("--set")
    both = plan_problems(iris_s3, "targets.kubernetes.ingress={host: iris.example.com, cluster_issuer: a, issuer: b}")
    assert [p.field for p in both if p.level.name == "ERROR"] == ["targets.kubernetes.ingress.issuer"]
    plain = plan_problems(iris_s3, "targets.kubernetes.ingress={host: iris.example.com}")
    (warning,) = [p for p in plain if p.field == "targets.kubernetes.ingress.host"]
    assert warning.level.name == "WARNING" and "plain HTTP" in warning.message
    private = plan_problems(iris_s3, "targets.kubernetes.ingress={host: iris.ml.internal}")
    assert not [p for p in private if p.field == "targets.kubernetes.ingress.host"]


@pytest.mark.parametrize("version, label", [
    ("2026-11-30", "2026-11-30"), ("1.0+build.7", "1.0_build.7"), ('2.1 "beta" \u202e# x', "2.1_beta_x"),
    ("-rc-", "rc"), ("x" * 100, "x" * 63), ("+++", ""),
])
def test_a_version_becomes_a_valid_label_value(version, label):
    from mlgen.targets.kubernetes.settings import label_value

    assert label_value(version) == label


def test_compose_keeps_the_model_on_a_volume_the_image_prepared_for_the_service_user(bundles):
    """compose runs the same stages read-only: the loading one fetches into a named volume that
    starts with the owner the Dockerfile gave /model-cache; hadolint and the compose specification
    accept both files."""
    hadolint, check = require_tool("hadolint"), require_tool("check-jsonschema")
    for name in ("iris-deployment", "recsys-deployment"):
        bundle = bundles[name]
        linted = subprocess.run([hadolint, str(bundle / "Dockerfile")], capture_output=True, text=True, timeout=60)
        assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr
        assert "RUN install -d -m 0700 -o 10001 -g 10001 /model-cache" in (bundle / "Dockerfile").read_text()
        compose = yaml.safe_load((bundle / "compose.yaml").read_text())
        loaders = {service: spec for service, spec in compose["services"].items()
                   if "MLGEN_MODEL_CACHE" in (spec.get("environment") or {})}
        assert list(loaders) == (["iris-s3"] if name.startswith("iris") else ["recsys-predict"]), name
        (loader,) = loaders.values()
        assert loader["environment"]["MLGEN_MODEL_CACHE"] == "/model-cache" and loader["read_only"] is True
        assert loader["volumes"] == ["model-cache:/model-cache"] and compose["volumes"] == {"model-cache": {}}
    composed = subprocess.run([check, "--builtin-schema", "vendor.compose-spec",
                               *(str(bundles[n] / "compose.yaml") for n in ("iris-deployment", "recsys-deployment"))],
                              capture_output=True, text=True, timeout=60)
    assert composed.returncode == 0, composed.stdout + composed.stderr
