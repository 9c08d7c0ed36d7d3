"""A target's Python environment, built as its platform builds it, from the bundle's own
requirements file (pinned with hashes from the lock), in a clean folder cached by what decides its
content: the interpreter's version, the platform tag and the requirements file's bytes.

Wheels are chosen for the target's platform, not this machine's: `pip download --platform …`
takes only files the lock names (so `--require-hashes` holds), then the environment installs from
them with no index. Lambda gets a `--target` folder, exactly as build.sh makes it; every other
platform a virtual environment."""

from __future__ import annotations

import hashlib
import os
import platform as host
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlgen.lock import Platform

CACHE = Path(os.environ.get("MLGEN_VERIFY_CACHE", Path.home() / ".cache" / "mlgen-verify"))
BUILD_TIMEOUT_S = 900  # one environment: downloads of a few hundred MB on a slow link
LEGACY_TAGS = {"x86_64": ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"),
               "aarch64": ("manylinux2014_aarch64",)}


class NotHere(Exception):
    """This machine cannot build or run the target's environment (the reason says why)."""


class BuildFailed(Exception):
    """The environment does not build from the bundle's requirements (the message is pip's)."""


@dataclass(frozen=True)
class Environment:
    python: Path  # the interpreter that runs the bundle
    site: Path | None  # Lambda: the --target folder on PYTHONPATH; None for a virtual environment
    bin: Path  # where console scripts (functions-framework) live
    build_s: float
    cached: bool


def find_python(version: str) -> Path:
    """An interpreter of exactly `version` on this machine: python3.X on PATH (one that runs:
    version managers leave shims that refuse), pyenv's versions, or one uv knows."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    uv = shutil.which("uv")
    if uv:
        found = subprocess.run([uv, "python", "find", "--no-python-downloads", version], capture_output=True,
                               text=True, timeout=30)
        candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    for candidate in filter(None, candidates):
        try:
            said = subprocess.run([str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            continue
        if said == version:
            return Path(candidate)
    raise NotHere(f"Python {version} is not installed here (install python{version}, e.g. with pyenv or "
                  f"`uv python install {version}`)")


def wheel_tags(platform: Platform) -> list[str]:
    """pip --platform tags for uv's `x86_64-manylinux_2_28`: every manylinux up to that glibc."""
    arch, _, libc = platform.tag.partition("-")
    minor = int(re.fullmatch(r"manylinux_2_(\d+)", libc).group(1))
    return [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)] + list(LEGACY_TAGS.get(arch, ()))


def build(platform: Platform, requirements: Path, lambda_package: bool = False) -> Environment:
    """The environment for `platform` from the bundle's `requirements` file (cached)."""
    if platform.arch != host.machine():
        raise NotHere(f"it runs on {platform.arch} and this machine is {host.machine()}")
    python = find_python(platform.python)
    text = requirements.read_bytes()
    # Comments name the target; what installs is the rest, so targets with the same set share one.
    content = b"\n".join(line for line in text.splitlines() if not line.lstrip().startswith(b"#"))
    key = hashlib.sha256(b"\0".join([platform.python.encode(), platform.tag.encode(), b"lambda" if lambda_package
                                     else b"venv", content])).hexdigest()[:20]
    folder = CACHE / "envs" / key
    done = folder / ".complete"
    started = time.perf_counter()
    cached = done.exists()
    if not cached:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _install(python, platform, requirements, folder, lambda_package, hashed=b"--hash=" in text)
        done.write_text(platform.describe() + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - started
    if lambda_package:
        return Environment(python, folder / "package", folder / "package" / "bin", elapsed, cached)
    return Environment(folder / "venv" / "bin" / "python", None, folder / "venv" / "bin", elapsed, cached)


def _install(python: Path, platform: Platform, requirements: Path, folder: Path, lambda_package: bool, hashed: bool) -> None:
    chosen = ["--only-binary=:all:", "--implementation", "cp", "--python-version", platform.python,
              *[word for tag in wheel_tags(platform) for word in ("--platform", tag)]]
    quiet = ["--disable-pip-version-check", "--no-input", "--quiet"]
    check = ["--require-hashes"] if hashed else []
    if lambda_package:  # what build.sh runs, into the folder the zip is made of
        _pip(python, "install", *quiet, "--no-compile", "--target", str(folder / "package"), *chosen, *check,
             "--requirement", str(requirements))
        return
    _run([str(python), "-m", "venv", str(folder / "venv")])
    wheels = folder / "wheels"
    _pip(python, "download", *quiet, "--dest", str(wheels), *chosen, *check, "--requirement", str(requirements))
    _run([str(folder / "venv" / "bin" / "python"), "-m", "pip", "install", *quiet, "--no-index", "--find-links",
          str(wheels), *check, "--requirement", str(requirements)])
    shutil.rmtree(wheels, ignore_errors=True)


def _clean_env() -> dict[str, str]:
    """No pip configuration of this machine's (extra indexes, find-links, constraints) reaches the
    build: the platform has none of it. Certificates and timeouts stay, the network needs them."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    kept = {key: os.environ[key] for key in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT") if key in os.environ}
    return {**env, **kept, "PIP_CONFIG_FILE": os.devnull}


def _pip(python: Path, *arguments: str) -> None:
    _run([str(python), "-m", "pip", *arguments])


def _run(command: list[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=_clean_env())
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{' '.join(command[:4])} … took over {BUILD_TIMEOUT_S} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        raise BuildFailed(" ".join(line.strip() for line in lines[-4:]) or f"{command[0]} failed")
