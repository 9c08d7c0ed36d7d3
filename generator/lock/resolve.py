"""`mlgen lock`: resolve each platform's requirements with uv (`uv pip compile --format
pylock.toml --python-platform … --python-version …`, whose report carries every file's sha256 and
size) and write the lock beside the spec. Platforms with the same Python, tag and requirements
are resolved once."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

from mlgen.errors import Problem, RenderError, UsageError
from mlgen.lock import LOCK_VERSION, Artifact, Package, Platform, lock_path
from mlgen.render.filters import pretty_json

RESOLVE_TIMEOUT_S = 300  # one platform's resolution; the index answers within seconds normally


def uv_command() -> list[str]:
    """uv from PATH, or from the `uv` package installed beside mlgen (`pip install 'mlgen-deploy[lock]'`)."""
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        from uv import find_uv_bin  # the PyPI package's own locator for its binary
    except ImportError:
        raise UsageError(Problem("mlgen lock resolves with uv, which is not installed",
                                 hint="python3 -m pip install 'mlgen-deploy[lock]'  (or put uv on PATH)")) from None
    return [find_uv_bin()]


def resolve(platform: Platform, uv: list[str]) -> tuple[Package, ...]:
    """The distributions `platform` installs for its requirements, each with its files' hashes."""
    with tempfile.TemporaryDirectory(prefix="mlgen-lock-") as folder:
        source, report = Path(folder, "requirements.in"), Path(folder, "pylock.toml")
        source.write_text("\n".join(platform.requirements) + "\n", encoding="utf-8")
        command = [*uv, "pip", "compile", "--quiet", "--format", "pylock.toml", "--no-header",
                   "--python-version", platform.python, "--python-platform", platform.tag,
                   "--output-file", str(report), str(source)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S,
                                    env={**os.environ, "UV_NO_PROGRESS": "1"})
        except subprocess.TimeoutExpired:
            raise RenderError(Problem(f"{platform.label}: uv did not resolve within {RESOLVE_TIMEOUT_S} s",
                                      hint="check the package index is reachable")) from None
        if result.returncode != 0:
            raise RenderError(Problem(f"{platform.label} ({platform.describe()}): the requirements do not resolve: "
                                      + _last_lines(result.stderr), field="runtime.requirements",
                                      hint="pin versions that publish wheels for this platform"))
        return _packages(tomllib.loads(report.read_text(encoding="utf-8")))


def _packages(pylock: dict) -> tuple[Package, ...]:
    packages = []
    for item in pylock.get("packages", []):
        wheels = item.get("wheels") or ([item["sdist"]] if "sdist" in item else [])
        files = tuple(Artifact(_file_name(w), w["hashes"]["sha256"], int(w.get("size", 0))) for w in wheels)
        packages.append(Package(item["name"], item["version"], files))
    return tuple(sorted(packages, key=lambda p: p.name))


def _file_name(artifact: dict) -> str:
    return artifact.get("name") or artifact["url"].rsplit("/", 1)[-1]


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " ".join(line.strip() for line in lines[-count:]) or "uv failed without saying why"


def uv_version(uv: list[str]) -> str:
    result = subprocess.run([*uv, "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() or "uv"


def lock_document(platforms: list[Platform], uv: list[str] | None = None,
                  progress=lambda line: None) -> dict:
    """The lock's content for `platforms` (resolving each distinct one once)."""
    uv = uv or uv_command()
    resolved: dict[tuple, tuple[Package, ...]] = {}
    document: dict = {"lock_version": LOCK_VERSION, "resolver": uv_version(uv), "platforms": {}}
    for platform in platforms:
        key = (platform.python, platform.tag, platform.requirements)
        if key not in resolved:
            progress(f"resolving {platform.label}: {platform.describe()}")
            resolved[key] = resolve(platform, uv)
        document["platforms"][platform.label] = {
            "python": platform.python, "tag": platform.tag, "requirements": list(platform.requirements),
            "packages": [{"name": p.name, "version": p.version,
                          "files": [{"file": f.file, "sha256": f.sha256, "size": f.size} for f in p.files]}
                         for p in resolved[key]],
        }
    return document


def write_lock(spec_path: Path, document: dict) -> Path:
    """Write the lock beside the spec, atomically (a reader sees the old lock or the new one)."""
    path = lock_path(spec_path)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text(pretty_json(document) + "\n", encoding="utf-8")
    os.replace(staged, path)
    return path
