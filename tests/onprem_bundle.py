"""Helpers of the on-prem tests: specs derived from an example, rendered bundles, the --root
tree systemd-analyze needs, the offline wheelhouse (built once per session) and the unit's own
ExecStart command."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from helpers import EXAMPLES, render_spec, require_tool

SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def derived_spec(tmp: Path, example: str, changes: dict) -> Path:
    """A copy of examples/<example>/spec.yaml with `changes` merged in (None deletes a key),
    beside copies of the example's model and handler files. The example's lock stays behind: it
    was made for the spec as written, and a changed spec renders unlocked (with a warning)."""
    source = EXAMPLES / example
    tmp.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in ("spec.yaml", "spec.lock.json", "README.md", "__pycache__"):
            continue
        target = tmp / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, target)
    data = _merge(yaml.safe_load((source / "spec.yaml").read_text(encoding="utf-8")), changes)
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return spec


def _merge(base: dict, changes: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render(spec: Path, out: Path) -> Path:
    return render_spec(spec, "onprem", out)


def unit_files(bundle: Path) -> list[Path]:
    return sorted(bundle.glob("*.service"))


def directive(unit_text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit_text.splitlines() if line.startswith(key + "=")]


def analyze_root(tmp: Path, unit: Path) -> Path:
    """A root for `systemd-analyze --root`: the host's system units, the unit under test in
    /etc/systemd/system, and a stand-in executable at ExecStart's binary (verify requires one)."""
    root = tmp / f"analyze-{unit.name}"
    (root / "usr/lib/systemd").mkdir(parents=True, exist_ok=True)
    if not (root / "usr/lib/systemd/system").exists():
        shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    shutil.copy2(unit, root / "etc/systemd/system" / unit.name)
    for command in directive(unit.read_text(), "ExecStart"):
        words = shlex.split(command)
        for binary in [w for w in words if w.startswith("/") and ("/bin/" in w)]:
            stand_in = root / binary.lstrip("/")
            if not stand_in.exists():
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.write_text("#!/bin/sh\n")
                stand_in.chmod(0o755)
    return root


def analyzed_unit(unit: Path) -> str:
    """The name systemd-analyze checks: a template unit is checked as one of its instances."""
    return unit.name.replace("@.service", "@8080.service")


def systemd_verify(tmp: Path, unit: Path) -> subprocess.CompletedProcess:
    analyze = require_tool("systemd-analyze")
    root = analyze_root(tmp, unit)
    return subprocess.run([analyze, "verify", f"--root={root}", f"/etc/systemd/system/{analyzed_unit(unit)}"],
                          capture_output=True, text=True, timeout=120)


def security_exposure(tmp: Path, unit: Path) -> tuple[float, str]:
    analyze = require_tool("systemd-analyze")
    root = analyze_root(tmp, unit)
    result = subprocess.run([analyze, "security", "--offline=yes", f"--root={root}", "--no-pager",
                             f"/etc/systemd/system/{analyzed_unit(unit)}"], capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, f"no exposure level in systemd-analyze's output:\n{result.stdout}\n{result.stderr}"
    return float(found.group(1)), result.stdout


def exec_start_command(unit_text: str, root: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    """The unit's own ExecStart (argv), Environment= and WorkingDirectory=, with every path under
    the install prefix moved into the staging `root` and the port (or the template's %i) set."""
    (command,) = directive(unit_text, "ExecStart")
    argv = shlex.split(command.replace("%i", str(port)))
    argv[argv.index("--port") + 1] = str(port)
    stage = lambda word: str(root) + word if word.startswith("/") and not word.startswith(("/bin/", "/usr/")) else word
    argv = [stage(word) for word in argv]
    environment = {}
    for line in directive(unit_text, "Environment"):
        for word in shlex.split(line):
            key, value = word.split("=", 1)
            environment[key] = stage(value) if key == "PYTHONPATH" else value
    (workdir,) = directive(unit_text, "WorkingDirectory")
    return argv, environment, Path(stage(workdir))


def wheelhouse_for(bundle: Path, cache: Path) -> Path:
    """Run the bundle's own build-offline-bundle.sh (no archive) and keep the wheelhouse in
    `cache`, keyed by app/requirements.txt, so a session downloads each set of wheels once."""
    requirements = (bundle / "app" / "requirements.txt").read_bytes() + (bundle / "build-offline-bundle.sh").read_bytes()
    cached = cache / hashlib.sha256(requirements).hexdigest()[:16]
    if not (cached / "SHA256SUMS").exists():
        result = subprocess.run([str(bundle / "build-offline-bundle.sh"), "--no-archive"], capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, f"build-offline-bundle.sh failed:\n{result.stdout}\n{result.stderr}"
        shutil.rmtree(cached, ignore_errors=True)
        shutil.copytree(bundle / "wheelhouse", cached)
    else:
        shutil.rmtree(bundle / "wheelhouse", ignore_errors=True)
        shutil.copytree(cached, bundle / "wheelhouse")
    return bundle / "wheelhouse"


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its type, mode, size, modification time and content hash."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
        state[path.relative_to(root).as_posix()] = (info.st_mode, info.st_size, info.st_mtime_ns, digest,
                                                    os.readlink(path) if path.is_symlink() else None)
    return state


def throwaway_certificate(tmp: Path, name: str = "diagnostics.hospital.internal") -> tuple[Path, Path]:
    """A self-signed certificate and its key for `name`, valid one day, under tmp/tls/."""
    certificate, key = tmp / "tls" / "diagnostics.pem", tmp / "tls" / "diagnostics.key"
    certificate.parent.mkdir()
    subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    f"/CN={name}", "-keyout", str(key), "-out", str(certificate)], check=True, capture_output=True)
    return certificate, key


def nginx_test(site: Path, tmp: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on a main configuration that includes the rendered site in its http block."""
    conf = tmp / "nginx.conf"
    conf.write_text(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
                    f"http {{\n    access_log off;\n    include {site};\n}}\n")
    return subprocess.run([require_tool("nginx"), "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True)
