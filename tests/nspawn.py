"""A real systemd for tests (DESIGN §7): a Debian root built once with debootstrap and cached by
its package list, copied per test and booted with systemd-nspawn. Shared by the on-prem and cloud
tests; `python tests/nspawn.py PACKAGE...` builds (or finds) a root ahead of a test run."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import require_tool

SUITE = "bookworm"  # Debian 12: the default cloud image's release
# Debian 13: its podman (5.x) has Quadlet, which Debian 12's 4.3 predates.
QUADLET_SUITE = "trixie"
QUADLET_PACKAGES = ("podman",)
MIRROR = "http://deb.debian.org/debian"  # the machine's own apt mirror
CACHE = Path(os.environ.get("MLGEN_NSPAWN_CACHE", Path.home() / ".cache" / "mlgen-nspawn"))
BASE_PACKAGES = ("systemd", "systemd-sysv", "python3", "python3-venv", "curl", "ca-certificates")


def cached_root(packages: tuple[str, ...] = BASE_PACKAGES, extra: tuple[str, ...] = (), suite: str = SUITE) -> Path:
    """A Debian `suite` root with `packages` (debootstrap --include) and then `extra` (apt-get
    install --no-install-recommends inside the root, for packages whose recommends would pull in
    half a distribution, like cloud-init), built once and kept under a key of the suite and both
    lists."""
    require_tool("debootstrap")
    require_tool("systemd-nspawn")
    key = hashlib.sha256(repr((suite, MIRROR, sorted(packages), sorted(extra))).encode()).hexdigest()[:16]
    root = CACHE / f"{suite}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{suite}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per key; the others wait and reuse it
        if root.is_dir():
            return root
        building = root.with_name(root.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(building), MIRROR], 900)
        if extra:
            _run(["systemd-nspawn", "-q", "-D", str(building), "--register=no", "--keep-unit", "--pipe",
                  "--setenv=DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                  "--no-install-recommends", *extra], 900)
            _run(["systemd-nspawn", "-q", "-D", str(building), "--register=no", "--keep-unit", "--pipe",
                  "apt-get", "clean"], 120)
        building.rename(root)
    return root


def copy_root(root: Path, dest: Path) -> Path:
    """A throwaway copy of a cached root for one boot (cp keeps owners, modes and links)."""
    _run(["cp", "-a", "--reflink=auto", str(root), str(dest)], 300)
    return dest


def boot(root: Path, *, binds: dict[Path, str] | None = None, timeout: int = 300, log: Path | None = None,
         private_network: bool = False) -> subprocess.CompletedProcess:
    """Boot `root` under systemd-nspawn until it powers off (the test's own oneshot unit does
    that), bounded by `timeout`; on timeout the container is stopped by its pid and the boot's
    console output is in the returned result either way."""
    command = ["systemd-nspawn", "-q", "-D", str(root), "--boot", "--register=no", "--keep-unit",
               *(["--private-network"] if private_network else []),
               *(f"--bind={host}:{inside}" for host, inside in (binds or {}).items())]
    log = log or root.with_name(root.name + ".console.log")
    with open(log, "wb") as console:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                returncode = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                returncode = process.wait()
    return subprocess.CompletedProcess(command, returncode, log.read_text(errors="replace"), "")


def oneshot_unit(name: str, command: str, after: str = "multi-user.target", wanted_by: str = "multi-user.target") -> str:
    """A unit that runs `command` once the boot reached `after`, then powers the container off:
    how a test drives a booted root from inside. Enable it for `wanted_by` (with `enable`): a
    unit after cloud-final.service must not be wanted by multi-user.target, which cloud-init's
    units come after (systemd would drop the start job to break the ordering cycle)."""
    return (f"[Unit]\nDescription=mlgen test driver {name}\nAfter={after}\n\n"
            f"[Service]\nType=oneshot\nExecStart=/bin/bash -c {_unit_quote(command)}\n"
            "ExecStopPost=/bin/systemctl --no-block poweroff\nStandardOutput=journal+console\n\n"
            f"[Install]\nWantedBy={wanted_by}\n")


def enable(root: Path, unit_name: str, unit_text: str, wanted_by: str = "multi-user.target") -> None:
    """Install a unit into the root and enable it the way `systemctl enable` would (a link)."""
    units = root / "etc/systemd/system"
    (units / unit_name).write_text(unit_text)
    wants = units / f"{wanted_by}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit_name
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit_name}")


def _unit_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def _run(command: list[str], timeout: int) -> None:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}… failed after {time.monotonic() - started:.0f}s:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if sys.argv[1:] == ["--quadlet"]:
        print(cached_root(QUADLET_PACKAGES, suite=QUADLET_SUITE))
    else:
        print(cached_root(BASE_PACKAGES, tuple(sys.argv[1:])))
