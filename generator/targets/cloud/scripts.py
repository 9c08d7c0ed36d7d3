"""deploy.sh and teardown.sh for the spec's provider, each CLI's own way of tagging and scaling
worked out in CloudSettings, so the templates only print them."""

from __future__ import annotations

from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.cloud.settings import CloudSettings

EXECUTABLE = 0o755


def script_files(model: ServiceModel, settings: CloudSettings, renderer: Renderer) -> list[RenderedFile]:
    return [renderer.file(script, f"cloud/{settings.provider}/{script}.j2", mode=EXECUTABLE, model=model, settings=settings)
            for script in ("deploy.sh", "teardown.sh")]
