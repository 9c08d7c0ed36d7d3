"""The files that put one service on one Linux host: the hardened unit (or a Quadlet container),
its environment file, install.sh / uninstall.sh, the offline-bundle builder, the optional TLS
proxy and the app/ folder. The cloud VM target installs this same set through cloud-init."""

from __future__ import annotations

import hashlib

from generator.bundle import APP, app_files
from generator.render import RenderedFile, Renderer
from generator.targets.onprem.filters import systemd_word
from generator.spec import ServiceModel
from generator.targets.onprem.settings import QUADLET_DIR, UNIT_DIR, HostSettings, host_settings

EXECUTABLE = 0o755
MODEL_SUMS = "model.sha256"
# What uvicorn needs beyond runtime.timeout_s to drain in-flight requests after SIGTERM.
STOP_GRACE_S = 5
# Wheels the offline bundle accepts: manylinux for glibc 2.17 up to 2.28 (RHEL 8, Debian 10 and
# every newer distribution run them), plus the legacy names older wheels carry.
GLIBC_MINORS = tuple(range(28, 16, -1))
LEGACY_PLATFORMS = {"x86_64": ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"),
                    "aarch64": ("manylinux2014_aarch64",)}


def host_files(model: ServiceModel, renderer: Renderer, host: HostSettings | None = None) -> list[RenderedFile]:
    """Every file of the host bundle. `host` defaults to the spec's `targets.onprem` settings."""
    host = host or host_settings(model)
    context = {"model": model, "host": host, "unit_dir": UNIT_DIR, "quadlet_dir": QUADLET_DIR,
               "archive": f"{host.name}-onprem-{host.platform}.tar.gz"}
    files = [
        renderer.file(f"{host.name}.env", "onprem/environment.j2", env=model.env, **context),
        renderer.file("install.sh", "onprem/install.sh.j2", mode=EXECUTABLE, **context),
        renderer.file("uninstall.sh", "onprem/uninstall.sh.j2", mode=EXECUTABLE, **context),
        renderer.file("build-offline-bundle.sh", "onprem/build-offline-bundle.sh.j2", mode=EXECUTABLE, **context,
                      glibc_minors=GLIBC_MINORS, legacy_platforms=LEGACY_PLATFORMS[host.platform]),
        renderer.file("INSTALL.md", "onprem/INSTALL.md.j2", **context),
    ]
    if host.mode == "container":
        files.append(renderer.file(f"{host.name}.container", "onprem/container.j2", **context, **_limits(model)))
    else:
        files.append(renderer.file(host.unit_file, "onprem/service.j2", **context, **_limits(model),
                                   exec_start=exec_start(host)))
        app = app_files(model)
        files.append(RenderedFile.text(MODEL_SUMS, model_sums(model, app)))
        files.extend(app)
    if host.proxy:
        files.append(renderer.file(f"{host.name}.nginx.conf", "onprem/nginx.conf.j2", **context))
    return files


def exec_start(host: HostSettings) -> str:
    """The command the unit runs: the runtime from the service's own virtual environment."""
    port = "%i" if host.instances else str(host.ports[0])
    return " ".join([systemd_word(f"{host.home}/venv/bin/python"), "-m", "mlgen_runtime", "serve",
                     "--config", systemd_word(f"{host.home}/app/serving.json"),
                     "--host", systemd_word(host.bind), "--port", port])


def model_sums(model: ServiceModel, app: list[RenderedFile]) -> str:
    """sha256sum --check lines for every model file in `app` (relative to app/): install.sh
    refuses a bundle whose model changed after rendering (a truncated copy, a swapped file)."""
    model_path = f"{APP}/{model.model.relpath}"
    return "".join(f"{hashlib.sha256(f.content).hexdigest()}  {f.path.removeprefix(APP + '/')}\n" for f in app
                   if f.path == model_path or f.path.startswith(model_path + "/"))


def _limits(model: ServiceModel) -> dict:
    return {
        "memory_mib": model.resources.memory_mib,
        "cpu_percent": max(1, round(model.resources.millicores / 10)),
        "timeout_stop_s": model.runtime.timeout_s + STOP_GRACE_S,
    }
