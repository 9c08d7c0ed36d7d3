"""A Nomad service job for an mlgen model service: one task group running the bundle's runtime,
with the spec's resources, environment and a readiness check on the Open Inference Protocol."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import hcl2
from lark.exceptions import LarkError  # what python-hcl2's parser raises

from mlgen.errors import Problem
from mlgen.render import RenderedFile, Renderer
from mlgen.render.checks import parser_check
from mlgen.spec import ServiceModel
from mlgen.targets.base import Target, TradeOff
from mlgen.bundle import app_files

HERE = Path(__file__).resolve().parent
_HCL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def hcl_string(value: object) -> str:
    """One quoted HCL string: quotes and backslashes escaped, control characters as escapes, and
    `${` / `%{` doubled so Nomad never interpolates a spec value."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    text = _HCL_CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\u{ord(m.group()):04x}"), text)
    return '"' + text.replace("${", "$${").replace("%{", "%%{") + '"'


@dataclass(frozen=True)
class JobSettings:
    name: str
    datacenters: tuple[str, ...]
    driver: str
    image: str | None
    count: int
    port: int
    cpu_mhz: int  # Nomad counts CPU in MHz; a core is taken as 1000 MHz
    memory_mb: int


def job_settings(model: ServiceModel) -> JobSettings:
    spec = model.target("nomad")
    return JobSettings(name=model.name, datacenters=tuple(spec["datacenters"]), driver=spec["driver"],
                       image=spec.get("image"), count=spec["count"], port=model.runtime.port,
                       cpu_mhz=model.resources.millicores, memory_mb=model.resources.memory_mib)


def fit(model: ServiceModel) -> list[Problem]:
    settings = job_settings(model)
    if settings.driver == "docker" and not settings.image:
        return [model.problem(("targets", "nomad", "driver"), "the docker driver needs an image",
                              hint="set targets.nomad.image, or use driver: exec")]
    return []


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = job_settings(model)
    return [renderer.file(f"{model.name}.nomad.hcl", "nomad/job.nomad.hcl.j2", model=model, settings=settings),
            *app_files(model)]


TARGET = Target(
    name="nomad",
    summary="a HashiCorp Nomad service job running the model service",
    plan=plan,
    fit=fit,
    schema=json.loads((HERE / "schema.json").read_text(encoding="utf-8")),
    filters={"hcl": hcl_string},
    checks={".hcl": parser_check(lambda content: hcl2.loads(content.decode("utf-8")), errors=(LarkError,))},
    templates=str(HERE / "templates"),
    trade_off=TradeOff(choose_when="you already schedule services with Nomad",
                       give_up="per-stage scaling; the cluster's own autoscaler decides the count"),
)
