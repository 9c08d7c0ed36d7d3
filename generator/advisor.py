"""`mlgen plan`: which target fits this spec, with evidence.

For each target and provider: whether it fits (the target's own fitness checks, which read the
platform limits in generator/fitness.py), the bundle's size, and the model's load time and memory
measured for real in a subprocess through the runtime's in-process API. With a traffic profile
(`--rps`), what each target costs a month (generator/pricing). Then a recommendation that weighs
what users trade: data that must stay on premises, scaling with demand, pay-per-use for light
models, long or heavy inference, GPUs, money.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlgen import targets
from mlgen.bundle import write_app
from mlgen.errors import Level, MlgenError
from mlgen.lock import locked
from mlgen.plan import target_renderer
from mlgen.pricing.report import CostRequest, Costs, price, recommendation as cost_advice, render as render_costs
from mlgen.render import Renderer
from mlgen.spec.build import SpecInputs
from mlgen.spec import ServiceModel
from mlgen.targets.onprem.settings import host_settings

_PROBE = r"""
import json, resource, sys, time
start = time.perf_counter()
from mlgen_runtime import load_service
service = load_service(sys.argv[1])
loaded = time.perf_counter()
body = sys.argv[3].encode()
response = service.handle("POST", sys.argv[2], {"content-type": "application/json"}, body)
done = time.perf_counter()
# The steady cost of one request (what pricing needs): the median of the runs after the first,
# at most 50 or about one second of them.
times = []
while len(times) < 50 and sum(times) < 1.0:
    begin = time.perf_counter()
    service.handle("POST", sys.argv[2], {"content-type": "application/json"}, body)
    times.append(time.perf_counter() - begin)
print(json.dumps({"load_s": loaded - start, "first_s": done - loaded, "status": response.status,
                  "request_s": sorted(times)[len(times) // 2], "bytes": len(body) + len(response.body),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass
class Option:
    target: str
    provider: str | None
    fits: bool
    reasons: list[str] = field(default_factory=list)
    bundle_mb: float | None = None

    @property
    def label(self) -> str:
        return f"{self.target}/{self.provider}" if self.provider else self.target


@dataclass
class Assessment:
    spec: str
    options: list[Option]
    measured: dict | None
    recommendation: list[str]
    costs: Costs | str | None = None  # None: no traffic given; a string: why nothing was priced

    def as_json(self) -> dict:
        return {"spec": self.spec, "measured": self.measured, "recommendation": self.recommendation,
                "options": [{"target": o.target, "provider": o.provider, "fits": o.fits, "reasons": o.reasons,
                             "bundle_mb": o.bundle_mb} for o in self.options],
                "costs": self.costs.as_json() if isinstance(self.costs, Costs) else self.costs}


def assess(spec: Path, inputs: SpecInputs = SpecInputs(), measure: bool = True,
           cost: CostRequest | None = None) -> Assessment:
    base = inputs.load(spec)
    size_note = None
    if base.model.fetched and base.model.size_bytes is None:
        probed, size_note = _artifact_size(base.model.uri)
        if probed is not None:
            inputs = replace(inputs, model_size=probed)
            base = inputs.load(spec)
    options = []
    for name in targets.available():
        target = targets.get(name)
        for provider in target.providers or [None]:
            extra = (f"targets.{name}.provider={provider}",) if provider else ()
            options.append(_option(spec, inputs, extra, name, provider))
    # A model.uri model is fetched by the service: plan never downloads it to measure it.
    measured = _measure(base) if measure and not base.model.fetched else None
    # The spec's own warnings (a GPU the model will not use, ...) belong to the advice too.
    advice = [problem.render() for problem in base.warnings] + ([size_note] if size_note else []) \
        + _recommend(base, options, measured)
    priced = None
    if cost is not None:
        cloud_bundle = next((o.bundle_mb for o in options if o.label == f"cloud/{base.target('cloud')['provider']}"), None)
        priced = price(base, replace(cost, inputs=replace(cost.inputs, artifact_mb=cloud_bundle)), measured)
        if isinstance(priced, Costs):
            advice += cost_advice(priced, {o.label for o in options if o.fits})
    return Assessment(str(spec), options, measured, advice, priced)


def _option(spec, inputs: SpecInputs, extra_sets: tuple, name, provider) -> Option:
    option = Option(name, provider, fits=True)
    try:
        model = inputs.load(spec, *extra_sets)
        target = targets.get(name)
        for problem in target.fit(model):
            option.reasons.append(("does not fit: " if problem.level is Level.ERROR else "note: ")
                                  + problem.message + (f" ({problem.hint})" if problem.hint else ""))
            option.fits &= problem.level is not Level.ERROR
        if option.fits:
            files = target.plan(model, target_renderer(Renderer(), target))
            option.bundle_mb = round((sum(len(f.content) for f in files) + _dependencies_bytes(model, target, option)) / 1e6, 2)
    except MlgenError as error:
        option.fits = False
        option.reasons.extend(p.message for p in error.problems)
    return option


def _artifact_size(uri: str) -> tuple[int | None, str]:
    """A model.uri artifact's size without downloading it: a file's stat, or the Content-Length of
    a HEAD request to a plain https URL. Object stores need credentials plan does not use: those
    are sized by --model-size, else by model.max_size."""
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit

    from mlgen.spec.artifact_uri import parse_uri

    unknown = (f"model: the size of {uri} is unknown here, so the limits are checked against model.max_size "
               "(pass --model-size to check the real one)")
    parts, store = urlsplit(uri), parse_uri(uri).store
    if store == "file":
        path = Path(unquote(parts.path))
        return (path.stat().st_size, f"model: {uri} is {path.stat().st_size / 1e6:.1f} MB") if path.is_file() else (None, unknown)
    if store != "https":
        return None, unknown
    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"), timeout=5) as response:
            length = response.headers.get("Content-Length")
    except (OSError, ValueError, urllib.error.URLError):
        return None, unknown
    if length is None or not length.isdigit():
        return None, unknown
    return int(length), f"model: {uri} is {int(length) / 1e6:.1f} MB (HEAD)"


def _dependencies_bytes(model: ServiceModel, target, option: Option) -> int:
    """What the platform installs beside mlgen's files: the locked wheels for its platform (their
    sizes are in the lock, from the resolver's report). Without a lock the size is mlgen's files
    only, and the option says so."""
    if target.platform is None:
        return 0
    entry = locked(model, target.platform(model)).entry
    if entry is None:
        option.reasons.append(f"note: bundle size without dependencies (no lock for {target.platform(model).label}: "
                              f"run `mlgen lock {model.spec_path}`)")
        return 0
    return entry.size


def _measure(model: ServiceModel) -> dict | None:
    """Import + load + first prediction of the real app/ in a fresh process."""
    request = {"inputs": [{"name": t.name, "datatype": t.datatype, "shape": [1 if d == -1 else d for d in t.shape],
                           "data": _zeros(t)} for t in model.model.inputs]}
    with tempfile.TemporaryDirectory(prefix="mlgen-plan-") as folder:
        app = write_app(model, Path(folder))
        result = subprocess.run([sys.executable, "-c", _PROBE, str(app / "serving.json"),
                                 f"/v2/models/{model.name}/infer", json.dumps(request)],
                                cwd=app, env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["the model did not load"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _zeros(tensor) -> list:
    count = 1
    for dim in tensor.shape:
        count *= 1 if dim == -1 else dim
    return ["x"] * count if tensor.datatype == "BYTES" else [False] * count if tensor.datatype == "BOOL" else [0] * count


def _recommend(model: ServiceModel, options: list[Option], measured: dict | None) -> list[str]:
    fitting = {o.label for o in options if o.fits}
    advice = []
    onprem = host_settings(model)
    if onprem.air_gapped or onprem.ip_address_allow:
        advice.append("onprem: the spec keeps the service on a closed network; only the on-prem target honours that")
    if model.resources.gpu:
        advice.append("kubernetes or cloud: the model needs a GPU, which no serverless platform offers here")
    if model.pipeline.split:
        advice.append("kubernetes: the pipeline is split into stage services, which Kubernetes scales one by one")
    load_s = (measured or {}).get("load_s")
    light = load_s is not None and load_s < 1.5 and (measured or {}).get("rss_mb", 1e9) < 1024
    serverless = sorted(label for label in fitting if label.startswith("serverless/"))
    if light and serverless and not model.resources.gpu:
        advice.append(f"{' or '.join(serverless)}: the model loads in {load_s:.2f} s with "
                      f"{measured['rss_mb']:.0f} MB, light enough for pay-per-use functions that scale to zero")
    elif load_s is not None and serverless:
        advice.append(f"serverless fits, but every cold start pays {load_s:.2f} s of loading: keep instances warm "
                      "(provisioned/min instances) or prefer cloud/kubernetes for steady traffic")
    if model.scaling.max_replicas > 1 and "cloud/aws" in fitting:
        advice.append("cloud: a VM fleet behind a load balancer scales with demand without running a cluster")
    if not advice:
        advice.append("onprem: the simplest deployment with full control; pick cloud or kubernetes when you need elastic scaling")
    return advice


def render_table(assessment: Assessment) -> str:
    lines = [f"{assessment.spec}:", f"  {'target':<20}{'fits':<6}{'bundle MB':>10}  why"]
    for option in assessment.options:
        why = "; ".join(option.reasons) or "within every limit mlgen knows"
        size = f"{option.bundle_mb:.2f}" if option.bundle_mb is not None else "-"
        lines.append(f"  {option.label:<20}{'yes' if option.fits else 'no':<6}{size:>10}  {why}")
    measured = assessment.measured
    if measured and "error" not in measured:
        lines.append(f"  measured: import + load {measured['load_s']:.2f} s, first prediction {measured['first_s'] * 1000:.1f} ms, "
                     f"peak memory {measured['rss_mb']:.0f} MB (cold start ≈ {measured['load_s'] + measured['first_s']:.2f} s "
                     "plus the platform's own start-up)")
    elif measured:
        lines.append(f"  measured: the model could not be loaded here: {measured['error']}")
    if assessment.costs is not None:
        lines.extend(render_costs(assessment.costs))
    lines.append("  recommendation:")
    lines.extend(f"    - {line}" for line in assessment.recommendation)
    return "\n".join(lines)
