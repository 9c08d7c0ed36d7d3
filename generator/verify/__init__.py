"""`mlgen verify`: the proof that a bundle starts the way its platform starts it, and answers.

For each target: render the bundle (in memory, into a scratch folder), build its Python
environment from the bundle's own requirements file (pinned with hashes by the lock) in a clean,
cached environment, start it as the platform does (launch.py), send the spec's examples
(probe.py) and compare the answers, then stop everything it started. A target this machine cannot
run (its Python version is not installed, another CPU architecture, a flavor run by an operator)
is "not verified" with the reason, never passed."""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from mlgen import targets
from mlgen.errors import MlgenError
from mlgen.plan import configured_targets, plan_target
from mlgen.render import Renderer
from mlgen.spec.build import SpecInputs
from mlgen.spec import ServiceModel
from mlgen.verify import environment, launch
from mlgen.verify.access import Access, ModelFileMismatch, access_for
from mlgen.examples import infer_path, judge, probes

PASSED, FAILED, NOT_VERIFIED = "passed", "FAILED", "not verified"


@dataclass
class Result:
    target: str
    status: str = PASSED
    reason: str = ""
    locked: bool = False  # the environment was built from hashes in the lock
    env_s: float | None = None  # environment build time (a cache hit costs next to nothing)
    env_cached: bool = False
    ready_s: float | None = None  # from starting the processes to the first ready answer
    first_s: float | None = None  # the first request's round trip

    def as_json(self) -> dict:
        return dict(self.__dict__)


def verify(spec: Path, selection: list[str], inputs: SpecInputs = SpecInputs(),
           progress: Callable[[str], None] = lambda line: None, model_file: Path | None = None) -> list[Result]:
    """`model_file`: a local copy of a model.uri artifact, put in each bundle's model cache (else
    the service fetches it with the credentials of this environment)."""
    model = inputs.load(spec)
    names = list(selection) or configured_targets(model)
    results = []
    for name in names:
        progress(f"{name}: rendering and building its environment")
        result = Result(name)
        try:
            _verify_target(model, name, result, progress, model_file)
        except environment.NotHere as reason:
            result.status, result.reason = NOT_VERIFIED, str(reason)
        except (environment.BuildFailed, launch.StartFailed, ModelFileMismatch) as failure:
            result.status, result.reason = FAILED, str(failure)
        except MlgenError as error:
            result.status, result.reason = FAILED, "; ".join(p.render() for p in error.problems)
        results.append(result)
    return results


def _verify_target(model: ServiceModel, name: str, result: Result, progress, model_file: Path | None) -> None:
    target = targets.get(name)
    if target.platform is None:
        raise environment.NotHere(f"the {name} target names no Python platform to build")
    files = plan_target(model, name, Renderer()).files
    platform = target.platform(model)
    with tempfile.TemporaryDirectory(prefix=f"mlgen-verify-{name}-") as folder:
        scratch = Path(folder)
        bundle = scratch / "bundle"
        for rendered in files:
            path = bundle / rendered.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rendered.content)
            path.chmod(rendered.mode)
        starter = STARTERS.get(name)
        if starter is None:
            raise environment.NotHere(f"verify does not know how the {name} platform starts a bundle")
        service = starter(model, bundle, platform, scratch, result, access_for(model, scratch, model_file))
        try:
            started = time.perf_counter()
            service.wait_ready()
            result.ready_s = time.perf_counter() - started
            progress(f"{name}: ready in {result.ready_s:.2f} s; sending the examples")
            failures = []
            for index, probe in enumerate(probes(model)):
                asked = time.perf_counter()
                answers = service.ask(infer_path(model), probe.body)
                if index == 0:
                    result.first_s = time.perf_counter() - asked
                for how, status, body in answers:
                    wrong = judge(model, probe, status, body)
                    if wrong:
                        wrong += logged_cause(scratch, wrong)
                        failures.append(f"{wrong} ({how})" if len(answers) > 1 else wrong)
        finally:
            service.stop()
    if failures:
        result.status, result.reason = FAILED, "; ".join(failures)


_REQUEST_ID = re.compile(r"request id ([0-9a-f]{8,64})")


def logged_cause(scratch: Path, failure: str) -> str:
    """A 5xx body names only the request id (the service keeps internals out of answers): what the
    service logged for that id, so the verify report says what went wrong."""
    found = _REQUEST_ID.search(failure)
    if not found:
        return ""
    for log in sorted(scratch.glob("*.log")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if found.group(1) in line and ("error" in line.lower() or "exception" in line.lower()):
                return f"; the service logged: {line.strip()[:400]}"
    return ""


def _environment(platform, requirements: Path, result: Result, lambda_package: bool = False) -> environment.Environment:
    built = environment.build(platform, requirements, lambda_package)
    result.env_s, result.env_cached = built.build_s, built.cached
    result.locked = b"--hash=" in requirements.read_bytes()
    return built


def _host(model: ServiceModel, bundle: Path, platform, scratch: Path, result: Result, access: Access, settings=None):
    from mlgen.targets.onprem import host_settings

    settings = settings or host_settings(model)
    if settings.mode != "venv":
        raise environment.NotHere("mode: container runs an image pulled by Podman; verify builds environments "
                                  "from the lock (use mode: venv to verify here)")
    built = _environment(platform, bundle / "app" / "requirements.txt", result)
    if settings.blue_green:  # the first release's color: blue's unit, on the spec's ports
        settings = settings.colors[0]
    return launch.start_host(bundle, settings.unit_file, f"{settings.name}.env", settings.prefix, settings.home,
                             built.python, scratch, access)


def _cloud(model: ServiceModel, bundle: Path, platform, scratch: Path, result: Result, access: Access):
    """The VMs unpack bundle.tar.gz (downloaded, or carried in the user data) and install it."""
    from mlgen.targets.cloud.userdata import vm_host

    archive = bundle / "bundle.tar.gz"
    data = archive.read_bytes() if archive.exists() else _inline_archive(bundle / "cloud-init.yaml")
    host = scratch / "host"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(host, filter="data")
    return _host(model, host, platform, scratch, result, access, vm_host(model))


def _inline_archive(user_data: Path) -> bytes:
    import base64

    for entry in yaml.safe_load(user_data.read_text(encoding="utf-8")).get("write_files", []):
        if entry.get("path", "").endswith(".tar.gz") and entry.get("encoding") in ("b64", "base64"):
            return base64.b64decode(entry["content"])
    raise launch.StartFailed("cloud-init.yaml carries no bundle archive and no bundle.tar.gz was rendered")


def _kubernetes(model: ServiceModel, bundle: Path, platform, scratch: Path, result: Result, access: Access):
    from mlgen.targets.kubernetes.settings import kubernetes_settings

    settings = kubernetes_settings(model)
    if settings.flavor != "deployment":
        raise environment.NotHere(f"flavor {settings.flavor} is run by its operator in the cluster; verify starts "
                                  "the Deployments of flavor: deployment")
    built = _environment(platform, bundle / "app" / "requirements.txt", result)
    found = {d["metadata"]["name"]: d for path in sorted((bundle / "base").glob("*.yaml"))
             for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d and d.get("kind") == "Deployment"}
    deployments = [found[w.name] for w in settings.workloads]  # the entry stage first
    return launch.start_stages(bundle, deployments, settings.app_dir, built.python, scratch, access)


def _serverless(model: ServiceModel, bundle: Path, platform, scratch: Path, result: Result, access: Access):
    from mlgen.targets.serverless.settings import function_settings

    settings = function_settings(model)
    if settings.provider == "aws":
        built = _environment(platform, bundle / "requirements.txt", result, lambda_package=True)
        return launch.FunctionHost("lambda", bundle, built.python, built.site, scratch, access)
    built = _environment(platform, bundle / "requirements.txt", result)
    if settings.provider == "gcp":
        return launch.start_gcp(bundle, built.bin, settings.entry_point, scratch, access)
    return launch.FunctionHost("azure", bundle, built.python, None, scratch, access)


STARTERS = {"onprem": _host, "cloud": _cloud, "kubernetes": _kubernetes, "serverless": _serverless}


def report(results: list[Result]) -> str:
    lines = [f"{'target':<12}{'environment':>18}{'start→ready':>14}{'first answer':>14}  result"]
    for r in results:
        env = "-" if r.env_s is None else f"{r.env_s:.1f} s{' cached' if r.env_cached else ''}"
        env += "" if r.env_s is None or r.locked else " unlocked"
        ready = "-" if r.ready_s is None else f"{r.ready_s:.2f} s"
        first = "-" if r.first_s is None else f"{r.first_s * 1000:.0f} ms"
        lines.append(f"{r.target:<12}{env:>18}{ready:>14}{first:>14}  {r.status}")
        if r.reason:
            lines.extend(f"    {line}" for line in r.reason.splitlines())
    return "\n".join(lines)
