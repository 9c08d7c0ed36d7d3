"""On-prem: a hardened systemd service on a Linux host, with or without internet access.

`host_files` (host.py) is the reusable part: the cloud VM target installs the same files.
"""

from __future__ import annotations

from mlgen.monitoring import NODE_EXPORTER_PORT, host_resources, monitoring_files, node_job, static_job
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.base import SPEC_FIELDS, Target, TradeOff, schema_fragment
from mlgen.targets.onprem.checks import CHECKS
from mlgen.targets.onprem.filters import FILTERS
from mlgen.targets.onprem.fitness import fit
from mlgen.targets.onprem.host import host_files
from mlgen.targets.onprem.settings import HostSettings, host_platform, host_settings

__all__ = ["TARGET", "HostSettings", "host_files", "host_platform", "host_settings"]


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = host_settings(model)
    files = host_files(model, renderer, settings)
    if model.observability.metrics:
        # Each instance is scraped on its own port (its admin port with runtime.admin_port), not
        # through the proxy (which would pick one);
        # blue-green: the live color's, from the file install.sh rewrites when it switches.
        service = static_job(model, list(settings.health_addresses))
        if settings.blue_green:
            del service["static_configs"]
            service["file_sd_configs"] = [{"files": [settings.scrape_targets]}]
        jobs = [service,
                node_job([f"{settings.local_host.replace('[::1]', 'localhost')}:{NODE_EXPORTER_PORT}"])]
        files += monitoring_files(model, renderer, jobs, host_resources(), note="onprem")
    return files


def open_to(model: ServiceModel) -> str | None:
    """Who reaches the service without credentials (security.auth none)."""
    settings = host_settings(model)
    if settings.proxy:
        return f"anyone who reaches this host's TLS proxy on port {settings.tls['port']}"
    if settings.bind in ("127.0.0.1", "::1"):
        return None
    return f"anyone who reaches this host on port {settings.ports[0]}"


TARGET = Target(
    name="onprem",
    schema=schema_fragment(__file__),
    trade_off=TradeOff(
        choose_when="data must stay on your premises (a hospital, a bank), the host may have no internet (air-gapped install from a wheelhouse), you want full control of hardware, GPUs included",
        give_up="elasticity: you size and run the servers; scaling means more hosts behind your proxy",
    ),
    docs="docs/targets/onprem.md",
    variants={"venv": {"mode": "venv"},
              "container": {"mode": "container", "image": "registry.example.com/ml/model:1.0"},
              # Blue-green switches the TLS proxy; no gRPC (one port cannot carry two versions).
              "bluegreen": {"mode": "venv", "tls": {"certificate": "/etc/ssl/certs/model.pem", "key": "/etc/ssl/private/model.key"},
                            SPEC_FIELDS: {"rollout": {"strategy": "blue_green"}}}},
    summary="a hardened systemd service on your own Linux servers, air-gapped if need be; data never leaves them",
    plan=plan,
    fit=fit,
    rollouts=("all_at_once", "blue_green"),
    admin_port=True,
    filters=FILTERS,
    checks=CHECKS,
    platform=host_platform,
    open_to=open_to,
)
