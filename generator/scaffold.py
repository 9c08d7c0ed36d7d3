"""`mlgen init`: a ready model-serving repository — commented spec, handler stubs, a tiny demo
model (the iris classifier, so rendering and `mlgen serve` work at once), handler tests, CI for
GitHub Actions and GitLab CI, and a pre-commit hook that runs the same drift check."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from mlgen.errors import ConflictError, Problem
from mlgen.render import RenderedFile, Renderer
from mlgen import DISTRIBUTION, __version__
from mlgen.resources import schema, templates_dir

FORMATS = {
    "sklearn": {
        "model_file": "model.joblib", "model_input": "features", "requirements": ["scikit-learn==1.9.1"],
        "outputs": [{"name": "predict", "model_name": "predict", "datatype": "INT64", "shape": [-1]},
                    {"name": "predict_proba", "model_name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    },
    "onnx": {
        "model_file": "model.onnx", "model_input": "X", "requirements": [],
        "outputs": [{"name": "predict", "model_name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "model_name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    },
    "python": {  # the iris model's coefficients as JSON, scored by handlers.Model with numpy
        "model_file": "weights.json", "model_input": "features", "requirements": [],
        "outputs": [{"name": "predict", "model_name": "predict", "datatype": "INT64", "shape": [-1]}],
    },
}


def service_name(folder: Path) -> str:
    """A DNS-1123 label from a folder name: "My Model_v2" -> "my-model-v2"."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:40].rstrip("-")
    return name or "model-service"


def install_requirement() -> str:
    """What the scaffold's CI installs: this mlgen. Installed from a repository (PEP 610's
    direct_url.json says which), that commit; otherwise this release from the package index under
    its distribution name ("mlgen" there is another project)."""
    from importlib import metadata

    try:
        origin = json.loads(metadata.distribution(DISTRIBUTION).read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        origin = {}
    vcs = origin.get("vcs_info")
    if vcs and vcs.get("commit_id"):
        return f"{DISTRIBUTION} @ {vcs['vcs']}+{origin['url']}@{vcs['commit_id']}"
    return f"{DISTRIBUTION}=={__version__}"


def plan_scaffold(name: str, model_format: str, description: str, port: int | None = None) -> list[RenderedFile]:
    settings = FORMATS[model_format]
    runtime = schema()["properties"]["runtime"]["properties"]
    port = port or runtime["port"]["default"]
    context = {"name": name, "format": model_format, "description": description, "port": port,
               "python": runtime["python"]["default"], "mlgen_requirement": install_requirement(),
               "model_path": f"model/{settings['model_file']}", "input_name": "features", **settings}
    renderer = Renderer()
    render = lambda path, template, mode=0o644: renderer.file(path, f"init/{template}", mode, **context)
    return [
        render("spec.yaml", "spec.yaml.j2"),
        render("handlers.py", "handlers.py.j2"),
        render("tests/test_handlers.py", "test_handlers.py.j2"),
        render("README.md", "README.md.j2"),
        render(".gitignore", "gitignore.j2"),
        render(".github/workflows/mlgen.yml", "github-workflow.yml.j2"),
        render(".gitlab-ci.yml", "gitlab-ci.yml.j2"),
        render(".pre-commit-config.yaml", "pre-commit-config.yaml.j2"),
        RenderedFile(context["model_path"], (templates_dir() / "init" / settings["model_file"]).read_bytes(), generated=False),
    ]


def write_scaffold(files: list[RenderedFile], folder: Path, *, force: bool) -> None:
    """Into a new or empty folder all at once (staged, then renamed); into a non-empty one only
    with `force`, file by file, each replaced atomically."""
    occupied = folder.exists() and any(folder.iterdir())
    if occupied and not force:
        raise ConflictError(Problem("the folder is not empty", str(folder),
                                    hint="choose a new folder, or pass --force to write into it"))
    if not occupied:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        _write_all(files, staging)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; a repository is not
        if folder.exists():
            folder.rmdir()
        os.rename(staging, folder)
        return
    for rendered in files:
        target = folder / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(rendered.content)
        os.chmod(handle.name, rendered.mode)
        os.replace(handle.name, target)


def _write_all(files: list[RenderedFile], root: Path) -> None:
    try:
        for rendered in files:
            target = root / rendered.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rendered.content)
            os.chmod(target, rendered.mode)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
