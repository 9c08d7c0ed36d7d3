"""Every limit a spec can break on the chosen function platform, each reported at the field
that breaks it, before anything is rendered (the figures are in limits.py)."""

from __future__ import annotations

import datetime
import math

from mlgen.spec import ServiceModel
from mlgen.targets.serverless import limits
from mlgen.targets.serverless.artifact import CACHE_COPIES
from mlgen.targets.serverless.package import bundle_estimate
from mlgen.targets.serverless.release import release_problems
from mlgen.targets.serverless.settings import FunctionSettings, function_settings

WHERE = ("targets", "serverless")


def fit(model: ServiceModel) -> list:
    """Every limit the spec can break, each located at the field that breaks it."""
    f = function_settings(model)
    limits, problems = f.limits, []
    name = limits.platform
    if model.resources.gpu > 0:
        problems.append(model.problem(("resources", "gpu"), f"{name} has no GPUs ({limits.gpu.note}; "
                                      f"{limits.gpu.source}, as of {limits.gpu.as_of})",
                                      hint="serve GPU models with the kubernetes target (GPU node pools) or the cloud target (GPU instances)"))
    if model.pipeline.split:
        problems.append(model.problem(("pipeline", "topology"), "a function runs every stage in one process",
                                      hint="use topology: collocated, or the kubernetes target for split stages", warning=True))
    # A function gets one HTTP request per invocation through the platform's gateway: no port of
    # its own for gRPC, and no concurrent requests in one instance to batch.
    if model.runtime.grpc_port is not None:
        problems.append(model.problem(("runtime", "grpc_port"), f"{name} serves HTTP only: a function cannot listen for gRPC",
                                      hint="the onprem, cloud and kubernetes targets serve runtime.grpc_port; remove it for serverless"))
    if model.runtime.batching is not None:
        problems.append(model.problem(("runtime", "batching"), f"{name} hands each instance one request at a time: nothing to batch",
                                      hint="the onprem, cloud and kubernetes targets batch; remove runtime.batching for serverless"))
    problems += _size_problems(model, f)
    problems += _fetched_model_problems(model, f)
    problems += _timeout_problems(model, f)
    problems += _memory_problems(model, f)
    problems += release_problems(model, f.provider, f.plan)
    # Bodies over the platform's limit get 413 from the handler: function_app_files caps
    # serving.json's max_body_bytes, so that is behaviour, not a problem to report.
    if f.provider == "aws":
        problems += _lambda_runtime_problems(model)
    if f.provider != "aws" and f.packaging == "image":
        problems.append(model.problem(WHERE + ("packaging",), f"packaging: image is for AWS Lambda; {name} builds from source",
                                      hint="use packaging: zip, or the kubernetes target to run your own image"))
    if f.provider == "azure" and f.plan == "consumption" and f.warm_instances:
        problems.append(model.problem(WHERE + ("warm_instances",), "the Azure Consumption plan cannot keep instances warm",
                                      hint="use plan: flex (always-ready instances) or plan: premium"))
    return problems


def _lambda_runtime_problems(model: ServiceModel, today: str | None = None) -> list:
    """A deprecated Lambda runtime: warned about once AWS deprecates it, an error once AWS
    refuses to create functions on it (the deploy would fail)."""
    python = model.runtime.python
    life = limits.LAMBDA_PYTHON_LIFECYCLE[python]
    today = today or datetime.date.today().isoformat()
    hint = "use runtime.python 3.12 or later (Amazon Linux 2023, whose glibc 2.34 also loads current numpy and scikit-learn wheels)"
    where = ("runtime", "python")
    if today >= life["create_block"]:
        return [model.problem(where, f"AWS Lambda stopped creating python{python} functions on {life['create_block']} "
                                     f"(deprecated {life['deprecated']}; {limits.LAMBDA_RUNTIMES_SOURCE})", hint=hint)]
    if today >= life["deprecated"]:
        return [model.problem(where, f"AWS Lambda deprecated python{python} on {life['deprecated']}; creating functions "
                                     f"stops on {life['create_block']}", hint=hint, warning=True)]
    return []


def _size_problems(model: ServiceModel, f: FunctionSettings) -> list:
    limit = f.limits.package_mb
    if limit.value is None:
        return []
    weights, deps, unknown = bundle_estimate(model, f)
    total = weights + deps
    if total <= limit.value:
        return []
    way_out = ("use packaging: image (up to 10 GB)" if f.provider == "aws" and f.packaging == "zip"
               else "use the cloud or kubernetes target")
    unknown_note = f"; {', '.join(unknown)} counted at {limits.UNKNOWN_PACKAGE_MB:g} MB each" if unknown else ""
    return [model.problem(("model", "path"),
                          f"the function would be about {total:.0f} MB unzipped (model {weights:.0f} MB + "
                          f"dependencies {deps:.0f} MB{unknown_note}), over {f.limits.platform}'s {limit} "
                          f"({limit.note}; {limit.source}, as of {limit.as_of})",
                          hint=f"{way_out}, or serve the model from object storage")]


def _fetched_model_problems(model: ServiceModel, f: FunctionSettings) -> list:
    """A model.uri model is not in the package: it must fit where the instance caches it (Lambda's
    /tmp, Cloud Functions' /tmp, which is memory), and every cold start downloads it."""
    if not model.model.fetched:
        return []
    size_mb = model.model.expected_bytes / limits.MB
    known = model.model.size_bytes is not None
    what = f"the model ({size_mb:,.0f} MB{'' if known else ', its model.max_size'})"
    unknown_hint = "" if known else "; pass --model-size with the artifact's real size, or lower model.max_size"
    if f.provider == "aws":
        return _lambda_tmp_problems(model, f, size_mb, what, known, unknown_hint)
    if f.provider == "gcp":
        return _gcf_memory_problems(model, f, size_mb, what, known, unknown_hint)
    return []


def _lambda_tmp_problems(model: ServiceModel, f: FunctionSettings, size_mb: float, what: str, known: bool,
                         unknown_hint: str) -> list:
    most, tmp_mb = limits.LAMBDA_TMP_MAX_MB, f.ephemeral_storage_mb
    where = WHERE + ("ephemeral_storage_mb",)
    model_field = ("model", "uri") if known else ("model", "max_size")
    problems = []
    if size_mb > most.value:
        problems.append(model.problem(model_field, f"{what} does not fit in Lambda's /tmp, at most {most} "
                                                   f"({most.note}; {most.source}, as of {most.as_of})",
                                      hint="use the cloud or kubernetes target" + unknown_hint, warning=not known))
    elif size_mb > tmp_mb:
        problems.append(model.problem(where, f"ephemeral_storage_mb {tmp_mb} cannot hold {what}: the function "
                                             "could never fetch it", hint=f"raise it to {_tmp_for(size_mb)}" + unknown_hint,
                                      warning=not known))
    elif CACHE_COPIES * size_mb > tmp_mb:
        room = _tmp_for(size_mb)
        problems.append(model.problem(where, f"ephemeral_storage_mb {tmp_mb} holds {what} but not also the partial "
                                             "file of a download a timeout cut off, which the next cold start in that "
                                             "environment would need room beside",
                                      hint=f"raise it to {room}" if room > tmp_mb else
                                      f"that is Lambda's most: keep timeout_s ({f.timeout_s} s) long enough for the download",
                                      warning=True))
    deps_mb = bundle_estimate(model, f)[1]
    package = f.limits.package_mb
    if package.value is not None and deps_mb <= package.value < deps_mb + size_mb:
        # Said where plan and render show it: this is what lets a large model use a zip package.
        problems.append(model.problem(("model", "uri"), f"{what} would not fit in the {package} package with its "
                                      f"dependencies ({deps_mb:.0f} MB); it is not in the package but fetched into "
                                      "/tmp on each cold start", hint=_cold_start_hint(f), warning=True))
    return problems


def _tmp_for(size_mb: float) -> int:
    return min(limits.LAMBDA_TMP_MAX_MB.value, max(limits.LAMBDA_TMP_MIN_MB.value, math.ceil(CACHE_COPIES * size_mb)))


def _cold_start_hint(f: FunctionSettings) -> str:
    init = limits.LAMBDA_INIT_S
    return (f"a cold start that takes over {init} is run again inside the first invocation, which then waits up to "
            f"timeout_s {f.timeout_s}; warm_instances keep instances with the model ready")


def _gcf_memory_problems(model: ServiceModel, f: FunctionSettings, size_mb: float, what: str, known: bool,
                         unknown_hint: str) -> list:
    memory, in_memory = f.memory_mb, limits.GCF_TMP_IN_MEMORY
    where = WHERE + ("memory_mb",)
    if size_mb > memory:
        return [model.problem(where, f"memory_mb {memory} cannot hold {what} in /tmp ({in_memory.note}; "
                                     f"{in_memory.source})", hint=f"raise memory_mb above {math.ceil(2 * size_mb)}" + unknown_hint,
                              warning=not known)]
    if 2 * size_mb > memory:
        return [model.problem(where, f"{what} takes memory twice: its file in /tmp ({in_memory.note}) and the loaded "
                                     f"model, together about {2 * size_mb:,.0f} MB of memory_mb {memory}",
                              hint=f"raise memory_mb above {math.ceil(2 * size_mb)}" + unknown_hint, warning=True)]
    return []


def _timeout_problems(model: ServiceModel, f: FunctionSettings) -> list:
    where, limits, problems = WHERE + ("timeout_s",), f.limits, []
    if limits.timeout_s.value is not None and f.timeout_s > limits.timeout_s.value:
        hint = {"aws": "keep it at 900 s or less, or use the cloud or kubernetes target for long requests",
                "gcp": "keep it at 3600 s or less, or use the kubernetes target",
                "azure": "use plan: flex or plan: premium (no execution limit), or the cloud or kubernetes target"}
        problems.append(model.problem(where, f"timeout_s {f.timeout_s} is over {limits.platform}'s {limits.timeout_s} "
                                             f"({limits.timeout_s.note or 'maximum'}; {limits.timeout_s.source}, as of {limits.timeout_s.as_of})",
                                      hint=hint[f.provider]))
    elif f.timeout_s > limits.http_timeout_s.value:
        problems.append(model.problem(where, f"HTTP callers get an answer within {limits.http_timeout_s} at most "
                                             f"({limits.http_timeout_s.note}); timeout_s {f.timeout_s} only helps direct invocations",
                                      hint="keep requests short, or use the cloud or kubernetes target", warning=True))
    return problems


def _memory_problems(model: ServiceModel, f: FunctionSettings) -> list:
    low, high = f.limits.memory_min_mb, f.limits.memory_max_mb
    where = WHERE + ("memory_mb",)
    if f.provider == "azure" and f.plan == "consumption":
        if f.memory_mb > high.value:
            return [model.problem(where, f"the Azure Consumption plan has a fixed {high} per instance ({high.source})",
                                  hint="use plan: flex (up to 4096 MB) or plan: premium (up to 14 GB)")]
        return []
    if f.memory_mb > high.value:
        return [model.problem(where, f"memory_mb {f.memory_mb} is over {f.limits.platform}'s {high} ({high.source}, as of {high.as_of})",
                              hint="use the cloud or kubernetes target for larger models")]
    if f.memory_mb < low.value:
        return [model.problem(where, f"{f.limits.platform} instances start at {low}; {low} will be used",
                              hint=low.note or None, warning=True)]
    return []
