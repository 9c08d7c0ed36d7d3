"""The serverless section of docs/choosing-a-target.md: the function platforms' limits, rendered
from the same tables the fitness checks read (limits.py), so the page cannot drift from them."""

from __future__ import annotations

from mlgen.targets.serverless import limits

COLD_STARTS = """## Cold starts: pick ONNX for functions

A function instance pays import + model load + first prediction before it answers. Measured here
with `python bench/serverless_coldstart.py` (whole process, median): an ONNX model with
onnxruntime starts in ~0.3 s, the same model with scikit-learn in ~1.6-2.6 s (importing
scikit-learn alone takes ~1.3 s), and the scikit-learn bundle is ~212 MB unzipped against
Lambda's 250 MB. Export scikit-learn models with skl2onnx before deploying them as functions.
"""


FETCHED_MODEL = """A model fetched from `model.uri` is not in the package: each instance downloads it on its cold
start into /tmp. Lambda's /tmp is its ephemeral storage, {tmp_min.value:,} to {tmp_max.value:,} MB
(`targets.serverless.ephemeral_storage_mb`, by default twice `model.max_size`; {tmp_max.source}, as of
{tmp_max.as_of}), and an on-demand Lambda's init phase gets {init} before Lambda runs it again inside the
first invocation ({init.source}). Cloud Functions' {gcf.note} ({gcf.source}), so the model is checked
against `memory_mb`."""


def _row(platform: limits.PlatformLimits) -> str:
    def cell(limit: limits.Limit, scale: int = 1, unit: str | None = None) -> str:
        if limit.value is None:
            return "none documented"
        if limit.unit == "count":
            return "none" if limit.value == 0 else str(limit.value)
        return f"{limit.value // scale:,} {unit or limit.unit}"

    return (f"| {platform.platform} | {cell(platform.package_mb)} | {cell(platform.timeout_s)} | "
            f"{cell(platform.http_timeout_s)} | {cell(platform.memory_min_mb)}-{cell(platform.memory_max_mb)} | "
            f"{cell(platform.request_bytes, limits.MB, 'MB')} | {cell(platform.gpu)} |")


def limits_markdown() -> str:
    platforms = [limits.LAMBDA_ZIP, limits.LAMBDA_IMAGE, limits.GCF_GEN2, *limits.AZURE_PLANS.values()]
    sources = sorted({limit.source for platform in platforms for limit in vars(platform).values()
                      if isinstance(limit, limits.Limit)})
    lines = [COLD_STARTS, "## Function platform limits (checked before rendering)", "",
             "| platform | package (unzipped) | timeout | HTTP front door | memory | request | GPUs |",
             "|---|---|---|---|---|---|---|",
             *(_row(platform) for platform in platforms),
             "", f"Figures as of {limits.LAMBDA_ZIP.timeout_s.as_of}, from: " + ", ".join(sources) + ".",
             "", FETCHED_MODEL.format(tmp_min=limits.LAMBDA_TMP_MIN_MB, tmp_max=limits.LAMBDA_TMP_MAX_MB,
                                      init=limits.LAMBDA_INIT_S, gcf=limits.GCF_TMP_IN_MEMORY)]
    return "\n".join(lines) + "\n"
