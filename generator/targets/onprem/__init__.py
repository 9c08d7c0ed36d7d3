"""On-prem: a hardened systemd service on a Linux host, with or without internet access.

`host_files` (host.py) is the reusable part: the cloud VM target installs the same files.
"""

from __future__ import annotations

from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel
from generator.targets.base import Target
from generator.targets.onprem.fitness import fit
from generator.targets.onprem.host import host_files
from generator.targets.onprem.settings import HostSettings, host_settings

__all__ = ["TARGET", "HostSettings", "host_files", "host_settings"]


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    return host_files(model, renderer)


TARGET = Target(
    name="onprem",
    summary="a hardened systemd service on your own Linux servers, air-gapped if need be; data never leaves them",
    plan=plan,
    fit=fit,
)
