"""The files that put one service on one Linux host: the hardened unit (or a Quadlet container),
its environment file, install.sh / uninstall.sh, the offline-bundle builder, the optional TLS
proxy and the app/ folder. The cloud VM target installs this same set through cloud-init."""

from __future__ import annotations

import hashlib

from mlgen.bundle import APP, app_files
from mlgen.render import RenderedFile, Renderer
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel
from mlgen.targets.onprem.settings import HostSettings, host_settings
from mlgen.examples import release_files

EXECUTABLE = 0o755
MODEL_SUMS = "model.sha256"


def host_files(model: ServiceModel, renderer: Renderer, settings: HostSettings | None = None) -> list[RenderedFile]:
    """Every file of the host bundle. `settings` defaults to the spec's `targets.onprem` settings."""
    settings = settings or host_settings(model)
    context = {"model": model, "settings": settings}
    files = [
        renderer.file(f"{settings.name}.env", "onprem/environment.j2", **context),
        renderer.file("install.sh", "onprem/install.sh.j2", mode=EXECUTABLE, **context),
        renderer.file("uninstall.sh", "onprem/uninstall.sh.j2", mode=EXECUTABLE, **context),
        renderer.file("build-offline-bundle.sh", "onprem/build-offline-bundle.sh.j2", mode=EXECUTABLE, **context),
        renderer.file("INSTALL.md", "onprem/INSTALL.md.j2", **context),
    ]
    if settings.mode == "container":
        files.append(renderer.file(f"{settings.name}.container", "onprem/container.j2", **context))
    elif settings.blue_green:
        files.extend(blue_green_files(model, renderer, settings))
    else:
        files.append(renderer.file(settings.unit_file, "onprem/service.j2", **context))
    if settings.mode != "container":
        app = app_files(model, requirements_text=settings.locked.text)
        if not model.model.fetched:  # a fetched model is checked against model.sha256 by the runtime and install.sh
            files.append(RenderedFile.text(MODEL_SUMS, model_sums(model, app)))
        files.extend(app)
    if settings.proxy:
        files.append(renderer.file(f"{settings.name}.nginx.conf", "onprem/nginx.conf.j2", **context))
    return files


def blue_green_files(model: ServiceModel, renderer: Renderer, settings: HostSettings) -> list[RenderedFile]:
    """Each color's template unit and nginx upstream, and what install.sh sends to a new color
    before it gets traffic: the spec's examples (those mlgen verify sends) and the checker."""
    files = []
    for color in settings.colors:
        files.append(renderer.file(color.unit_file, "onprem/service.j2", model=model, settings=color))
        files.append(renderer.file(f"{settings.name}.upstream-{color.color}.conf", "onprem/upstream.conf.j2",
                                   model=model, settings=color))
    for color in settings.colors:
        files.append(RenderedFile.text(f"release/scrape-targets-{color.color}.json", pretty_json(color.scrape_target_list) + "\n"))
    return files + release_files(model)


def model_sums(model: ServiceModel, app: list[RenderedFile]) -> str:
    """sha256sum --check lines for every model file in `app` (relative to app/): install.sh
    refuses a bundle whose model changed after rendering (a truncated copy, a swapped file)."""
    model_path = f"{APP}/{model.model.relpath}"
    return "".join(f"{hashlib.sha256(f.content).hexdigest()}  {f.path.removeprefix(APP + '/')}\n" for f in app
                   if f.path == model_path or f.path.startswith(model_path + "/"))
