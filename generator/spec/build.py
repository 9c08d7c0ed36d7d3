"""load → validate → ServiceModel, with the checks a schema cannot express (files on disk,
checksums, cross-field rules). All problems are gathered before anything is raised."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from mlgen.errors import Level, Problem, SpecError
from mlgen.spec.artifact_uri import uri_problems
from mlgen.spec.artifacts import artifact_problems
from mlgen.spec.handlers import Reference, handler_problems
from mlgen.spec.load import SourceMap, load_yaml
from mlgen.spec.model import (
    API_KEY_PREFIX, Batching, CodeFile, Example, ModelSpec, Observability, Pipeline, Resources, Runtime, Scaling,
    Rollout, RolloutStep, SecretRef, Security, ServiceModel, Tensor, duration_seconds, freeze, quantity_bytes,
)
from mlgen.spec.overlay import apply_overlays, apply_sets
from mlgen.spec.validate import schema_problems, with_defaults

MAX_MODEL_FILES = 10_000


def load_spec(path: str | os.PathLike, overlays: tuple = (), sets: tuple = (), *,
              model_size: int | None = None) -> ServiceModel:
    """`model_size`: the size of a `model.uri` artifact, from the command line (--model-size):
    mlgen never downloads the model to learn it."""
    data, sources = load_merged(path, overlays, sets)
    spec_path = Path(path)
    problems = schema_problems(data, sources)
    if problems:
        raise SpecError(problems)
    data = with_defaults(data)
    spec_dir = spec_path.resolve().parent
    problems = (_cross_field_problems(data, sources) + _file_problems(data, sources, spec_dir)
                + _model_size_problems(data, sources, model_size))
    errors = [p for p in problems if p.level is Level.ERROR]
    if errors:
        raise SpecError(errors)
    return _build(data, spec_path, spec_dir, warnings=tuple(problems), sources=sources, model_size=model_size)


def _model_size_problems(data: dict, sources: SourceMap, model_size: int | None) -> list[Problem]:
    if model_size is None:
        return []
    model = data["model"]
    if "uri" not in model:
        return [sources.problem(("model", "path"), "--model-size is for a model fetched from model.uri",
                                hint="the size of model.path is read from its file")]
    if model_size > quantity_bytes(model["max_size"]):
        return [sources.problem(("model", "max_size"), f"the artifact is {model_size} bytes (--model-size), "
                                f"more than max_size {model['max_size']}: the service would stop its download",
                                hint="raise model.max_size")]
    return []


def _bytes_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class SpecInputs:
    """What is layered over every spec of a command: --overlay files, then --set values; and
    --model-size, the size of a model.uri artifact."""

    overlays: tuple[Path, ...] = ()
    sets: tuple[str, ...] = ()
    model_size: int | None = None

    def load(self, spec: Path, *more_sets: str):
        """The spec's ServiceModel with these inputs (and `more_sets` after the command's own)."""
        return load_spec(spec, self.overlays, self.sets + more_sets, model_size=self.model_size)


def load_merged(path: str | os.PathLike, overlays: tuple = (), sets: tuple = ()) -> tuple[dict, SourceMap]:
    """The spec's data with overlays and --set values merged in (not yet validated)."""
    data, sources, _raw = load_yaml(Path(path), str(path))
    if not isinstance(data, dict):
        raise SpecError(sources.problem((), f"the top level must be a mapping of fields, not {type(data).__name__}",
                                        hint="start with `apiVersion: mlgen.dev/v1`"))
    apply_overlays(data, sources, tuple(overlays))
    apply_sets(data, sources, tuple(sets))
    return data, sources


def _cross_field_problems(data: dict, sources: SourceMap) -> list[Problem]:
    problems = []
    scaling = data["scaling"]
    if scaling["min_replicas"] > scaling["max_replicas"]:
        problems.append(sources.problem(("scaling", "min_replicas"),
                                        f"min_replicas ({scaling['min_replicas']}) is greater than max_replicas ({scaling['max_replicas']})"))
    for side in ("inputs", "outputs"):
        seen: set[str] = set()
        for index, tensor in enumerate(data["model"][side]):
            if tensor["name"] in seen:
                problems.append(sources.problem(("model", side, index, "name"), f"{side[:-1]} name {tensor['name']!r} is used twice"))
            seen.add(tensor["name"])
    secret_names = {secret["name"] for secret in data["secrets"]}
    for index, secret in enumerate(data["secrets"]):
        if secret["name"] in data["env"]:
            problems.append(sources.problem(("secrets", index, "name"),
                                            f"{secret['name']} is set both in env and in secrets", hint="keep it in secrets only"))
    for name in data["env"]:
        if name.startswith("MLGEN_") and name not in secret_names:
            problems.append(sources.problem(("env", name), f"{name} is reserved for mlgen's runtime", key=True,
                                            hint="variables starting with MLGEN_ configure the runtime; pick another name"))
    if data["pipeline"]["topology"] == "microservices" and data["runtime"]["port"] + 3 > 65535:
        problems.append(sources.problem(("runtime", "port"), "split stages listen on port+1 to port+3, which passes 65535"))
    problems += uri_problems(data, sources)
    problems += _runtime_problems(data, sources)
    problems += _security_problems(data, sources)
    problems += _example_problems(data, sources)
    problems += _rollout_problems(data, sources)
    return problems


def _rollout_problems(data: dict, sources: SourceMap) -> list[Problem]:
    rollout, given = data["rollout"], getattr(sources, "values", {})
    strategy = rollout["strategy"]
    unused = {"steps": "canary", "preview": "blue_green"}
    problems = [sources.problem(("rollout", name), f"{name} is for rollout.strategy {wanted}, not {strategy}", key=True,
                                hint=f"remove it, or set strategy: {wanted}")
                for name, wanted in unused.items() if ("rollout", name) in given and strategy != wanted]
    if strategy != "canary":
        return problems
    steps = rollout["steps"]
    for index, step in enumerate(steps):
        if index and step["weight"] <= steps[index - 1]["weight"]:
            problems.append(sources.problem(("rollout", "steps", index, "weight"),
                                            f"weight {step['weight']} does not increase on the step before ({steps[index - 1]['weight']})"))
        last = index == len(steps) - 1
        if not last and "pause" not in step:
            problems.append(sources.problem(("rollout", "steps", index), "every step but the last needs a pause",
                                            hint="the analysis runs during the pause: pause: 5m"))
        if last and "pause" in step:
            problems.append(sources.problem(("rollout", "steps", index, "pause"), "the last step needs no pause: "
                                            "the release ends there", key=True, hint="remove its pause"))
    if steps[-1]["weight"] != 100:
        problems.append(sources.problem(("rollout", "steps", len(steps) - 1, "weight"),
                                        f"the last step has weight {steps[-1]['weight']}: a canary ends with all the traffic",
                                        hint="end with - weight: 100"))
    return problems


def _security_problems(data: dict, sources: SourceMap) -> list[Problem]:
    security, problems = data["security"], []
    auth = security["auth"]
    if auth == "api_key" and not security["api_keys"]:
        problems.append(sources.problem(("security", "api_keys"), "auth api_key needs at least one key in api_keys",
                                        hint="api_keys: [{secret: NAME-api-keys, key: current}] (a reference: the key stays in the secret store)"))
    if auth == "jwt" and "jwt" not in security:
        problems.append(sources.problem(("security", "auth"), "auth jwt needs security.jwt",
                                        hint="jwt: {issuer: https://login.example.com, audience: NAME}"))
    for field, mode in (("api_keys", "api_key"), ("jwt", "jwt")):
        if security.get(field) and auth != mode:
            problems.append(sources.problem(("security", field), f"security.{field} is set but auth is {auth}",
                                            hint=f"set auth: {mode}, or remove {field}"))
    for index, secret in enumerate(data["secrets"]):
        if secret["name"].startswith(API_KEY_PREFIX):
            problems.append(sources.problem(("secrets", index, "name"), f"{API_KEY_PREFIX}* names the keys of security.api_keys",
                                            hint="pick another variable name"))
    return problems


def _example_problems(data: dict, sources: SourceMap) -> list[Problem]:
    """Examples speak of the declared tensors only: a misspelt name would make verify send a
    request the runtime refuses, or expect an output that never comes."""
    problems = []
    for index, example in enumerate(data["examples"]):
        for side in ("inputs", "outputs"):
            declared = [tensor["name"] for tensor in data["model"][side]]
            for name in example.get(side, {}):
                if name not in declared:
                    problems.append(sources.problem(("examples", index, side, name), f"{name!r} is not one of model.{side}",
                                                    key=True, hint=f"model.{side} declares {', '.join(declared)}"))
        missing = [tensor["name"] for tensor in data["model"]["inputs"] if tensor["name"] not in example["inputs"]]
        if missing:
            problems.append(sources.problem(("examples", index, "inputs"), f"the example has no data for {', '.join(missing)}",
                                            hint="every request carries every one of model.inputs"))
    return problems


def _runtime_problems(data: dict, sources: SourceMap) -> list[Problem]:
    runtime, problems = data["runtime"], []
    taken = {runtime["port"]: "runtime.port"}
    if data["pipeline"]["topology"] == "microservices":
        taken.update({runtime["port"] + offset: f"the split stage on runtime.port+{offset}" for offset in (1, 2, 3)})
    for field, what in (("grpc_port", "gRPC"), ("admin_port", "health and metrics")):
        port = runtime.get(field)
        if port is None:
            continue
        if port in taken:
            problems.append(sources.problem(("runtime", field), f"port {port} is already {taken[port]}",
                                            hint=f"{what} needs a port of its own"))
        taken[port] = f"runtime.{field}"
    if data["resources"]["gpu"] > 0 and data["model"]["format"] == "sklearn":
        problems.append(replace(sources.problem(
            ("resources", "gpu"), "a scikit-learn model does not use the GPU: the service computes on CPU",
            hint="export the model to ONNX (skl2onnx) to run it on CUDA, or set resources.gpu: 0"), level=Level.WARNING))
    if "batching" in runtime:
        # Batching concatenates requests along the first axis and splits the answer the same way,
        # so every tensor must have the batch as its first dimension.
        for side in ("inputs", "outputs"):
            for index, tensor in enumerate(data["model"][side]):
                if not tensor["shape"] or tensor["shape"][0] != -1:
                    problems.append(sources.problem(
                        ("runtime", "batching"),
                        f"batching needs the batch as the first dimension of every tensor, but {side[:-1]} "
                        f"'{tensor['name']}' has shape {tensor['shape']}",
                        hint=f"declare model.{side}[{index}].shape with -1 first (for example [-1, 4]), or remove runtime.batching"))
    return problems


def _file_problems(data: dict, sources: SourceMap, spec_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    model = data["model"]
    # A fetched model (`uri`) is never downloaded to validate a spec: its hash is checked by the
    # service that fetches it, its size by `mlgen plan`.
    model_path = _inside(spec_dir, model["path"], ("model", "path"), sources, problems) if "path" in model else None
    if model_path is not None:
        if not model_path.exists():
            problems.append(sources.problem(("model", "path"), f"{model['path']} does not exist",
                                            hint=f"the path is relative to {spec_dir}"))
        elif "sha256" in model:
            if model_path.is_dir():
                problems.append(sources.problem(("model", "sha256"), "sha256 is checked for a single file, but path is a folder"))
            elif _sha256(model_path) != model["sha256"]:
                problems.append(sources.problem(("model", "sha256"), f"{model['path']} does not match this sha256",
                                                hint=f"the file's sha256 is {_sha256(model_path)}; update the spec if the model changed on purpose"))
        if model_path.exists():
            problems += artifact_problems(data, sources, model_path)
    references = [Reference(where, target, path, tuple(_handler_files(spec_dir, target).values()))
                  for where, target in _callables(data)
                  for path in _module_files(spec_dir, target, where, sources, problems)]
    if references:
        bundled = {code.path for code in _code_files(spec_dir, data)}
        problems += handler_problems(references, data, sources, spec_dir, bundled)
    return problems


def _callables(data: dict) -> list[tuple[tuple, str]]:
    found = []
    if data["model"].get("handler"):
        found.append((("model", "handler"), data["model"]["handler"]))
    for step in ("preprocess", "postprocess"):
        if data["pipeline"].get(step):
            found.append((("pipeline", step), data["pipeline"][step]))
    return found


def _inside(root: Path, relative: str, where: tuple, sources: SourceMap, problems: list[Problem]) -> Path | None:
    """`relative` resolved under `root`, or None (with a problem) when it escapes it, symlinks included."""
    if Path(relative).is_absolute():
        problems.append(sources.problem(where, f"{relative} is an absolute path", hint="give a path relative to the spec's folder"))
        return None
    resolved = (root / relative).resolve()
    if resolved != root and root not in resolved.parents:
        problems.append(sources.problem(where, f"{relative} is outside the spec's folder",
                                        hint="bundles carry only files under the spec's folder; move the file there"))
        return None
    return resolved


def _module_files(spec_dir: Path, target: str, where: tuple, sources: SourceMap, problems: list[Problem]) -> list[Path]:
    module = target.split(":")[0]
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (spec_dir / candidate).exists():
            resolved = _inside(spec_dir, candidate, where, sources, problems)
            return [resolved] if resolved else []
    problems.append(sources.problem(where, f"module {module!r} was not found",
                                    hint=f"expected {base}.py or {base}/__init__.py under {spec_dir}"))
    return []


def _code_files(spec_dir: Path, data: dict) -> tuple[CodeFile, ...]:
    """Every handler module, with the packages it sits in, so imports work inside app/."""
    files: dict[str, Path] = {}
    for _where, target in _callables(data):
        files.update(_handler_files(spec_dir, target))
    return tuple(CodeFile(relpath=relpath, path=path) for relpath, path in sorted(files.items()))


def _handler_files(spec_dir: Path, target: str) -> dict[str, Path]:
    """The files one `module:attr` brings into app/ (by their path there): the module, or every
    module of a package, and the __init__.py of the packages around it."""
    files: dict[str, Path] = {}
    parts = target.split(":")[0].split(".")
    for depth in range(1, len(parts)):
        init = spec_dir.joinpath(*parts[:depth], "__init__.py")
        if init.exists():
            files[init.relative_to(spec_dir).as_posix()] = init.resolve()
    module = spec_dir.joinpath(*parts[:-1], parts[-1] + ".py")
    package = spec_dir.joinpath(*parts)
    if module.exists():
        files[module.relative_to(spec_dir).as_posix()] = module.resolve()
    elif package.is_dir():
        for source in sorted(package.rglob("*.py")):
            files[source.relative_to(spec_dir).as_posix()] = source.resolve()
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tensors(items: list[dict]) -> tuple[Tensor, ...]:
    return tuple(Tensor(name=item["name"], datatype=item["datatype"], shape=tuple(item["shape"])) for item in items)


def _rollout(rollout: dict, slo: dict) -> Rollout:
    analysis = rollout["analysis"]
    error_percent = analysis.get("max_error_percent", round(100 - slo["availability_percent"], 6))
    return Rollout(
        strategy=rollout["strategy"],
        steps=tuple(RolloutStep(step["weight"], duration_seconds(step.get("pause", "0s")) if "pause" in step else 0)
                    for step in rollout["steps"]) if rollout["strategy"] == "canary" else (),
        preview_s=duration_seconds(rollout["preview"]) if rollout["strategy"] == "blue_green" else 0,
        max_error_ratio=error_percent / 100,
        max_latency_p99_ms=analysis.get("max_latency_p99_ms", slo["latency_p99_ms"]),
        interval_s=duration_seconds(analysis["interval"]),
    )


def _build(data: dict, spec_path: Path, spec_dir: Path, warnings: tuple, sources: SourceMap,
           model_size: int | None) -> ServiceModel:
    meta, model, pipeline, runtime = data["metadata"], data["model"], data["pipeline"], data["runtime"]
    resources, scaling, obs = data["resources"], data["scaling"], data["observability"]
    cpu = resources["cpu"]
    security = _security(data["security"])
    return ServiceModel(
        name=meta["name"],
        version=meta["version"],
        description=meta["description"],
        labels=freeze(meta["labels"]),
        model=ModelSpec(
            format=model["format"],
            path=(spec_dir / model["path"]).resolve() if "path" in model else None,
            relpath=Path(os.path.normpath(model["path"])).as_posix() if "path" in model else None,
            sha256=model.get("sha256"),
            uri=model.get("uri"),
            version=model.get("version", meta["version"]),
            max_bytes=quantity_bytes(model["max_size"]),
            size_bytes=model_size if "uri" in model else _bytes_on_disk(spec_dir / model["path"]),
            handler=model.get("handler"),
            inputs=_tensors(model["inputs"]),
            outputs=_tensors(model["outputs"]),
        ),
        pipeline=Pipeline(preprocess=pipeline.get("preprocess"), postprocess=pipeline.get("postprocess"),
                          topology=pipeline["topology"]),
        runtime=Runtime(python=runtime["python"], requirements=tuple(runtime["requirements"]), port=runtime["port"],
                        workers=runtime["workers"], timeout_s=runtime["timeout_s"],
                        max_body_bytes=runtime["max_body_bytes"], grpc_port=runtime.get("grpc_port"),
                        batching=Batching(**runtime["batching"]) if "batching" in runtime else None,
                        admin_port=runtime.get("admin_port")),
        resources=Resources(cpu=cpu if isinstance(cpu, str) else _plain_number(cpu),
                            memory=resources["memory"], gpu=resources["gpu"]),
        scaling=Scaling(min_replicas=scaling["min_replicas"], max_replicas=scaling["max_replicas"],
                        target_cpu_percent=scaling["target_cpu_percent"]),
        env=freeze(data["env"]),
        secrets=tuple(SecretRef(name=s["name"], secret=s["secret"], key=s.get("key", s["name"].lower()))
                      for s in data["secrets"]) + security.api_keys,
        security=security,
        observability=Observability(metrics=obs["metrics"], log_format=obs["log_format"], log_level=obs["log_level"],
                                    slo=freeze(obs["slo"]), alerts=freeze(obs["alerts"])),
        targets=freeze(data["targets"]),
        rollout=_rollout(data["rollout"], obs["slo"]),
        examples=tuple(Example(inputs=freeze(e["inputs"]), outputs=freeze(e.get("outputs", {})), tolerance=e["tolerance"])
                       for e in data["examples"]),
        code_files=_code_files(spec_dir, data),
        spec_path=spec_path,
        spec_digest=hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        warnings=warnings,
        sources=sources,
    )


def _security(security: dict) -> Security:
    """The spec's security; each API key becomes a secret reference named MLGEN_API_KEY_<n>, so
    every target delivers it the way it delivers the spec's own secrets."""
    keys = tuple(SecretRef(name=f"{API_KEY_PREFIX}{index}", secret=key["secret"], key=key["key"])
                 for index, key in enumerate(security["api_keys"], 1))
    return Security(auth=security["auth"], header=security["header"].lower(), api_keys=keys,
                    jwt=freeze(security["jwt"]) if "jwt" in security else None)


def _plain_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
