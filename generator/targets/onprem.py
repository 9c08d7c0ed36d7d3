"""On-prem: a hardened systemd service on a Linux host, with or without internet access."""

from __future__ import annotations

from generator.bundle import app_files
from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel
from generator.targets.base import Target


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = model.target("onprem")
    context = {"model": model, "settings": settings, "home": f"{settings['prefix']}/{model.name}"}
    return [
        renderer.file(f"{model.name}.service", "onprem/service.j2", **context),
        renderer.file(f"{model.name}.env", "onprem/env.j2", **context),
        *app_files(model),
    ]


TARGET = Target(
    name="onprem",
    summary="a hardened systemd service on your own Linux servers; data never leaves them",
    plan=plan,
)
