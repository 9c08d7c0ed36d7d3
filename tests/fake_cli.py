"""Stand-in cloud CLIs for running a rendered script offline, and reading back what it asked.

A test names its stand-ins (gcloud, az, curl, sleep …) and gives each a bash body that appends
the call it got to the file $CALLS and answers from a script of its own, steered by knobs the test
sets in the environment (OPEN_AT, FAIL_AT, …):

    result, calls = run_with_fakes(bundle, tmp_path, {"gcloud": FAKE_GCLOUD, "sleep": SLEEP},
                                   knobs={"OPEN_AT": 3})

writes each stand-in as an executable into tmp_path/fake-bin, runs bundle/deploy.sh with that
folder first on PATH (then only /usr/bin and /bin), and returns the finished process with the
recorded calls, one a line, in the order they were made.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Mapping
from pathlib import Path

# Starts every stand-in. `count NAME` prints how many times this run has come there (this time
# included), kept in $CALLS.NAME beside the calls, so that a knob such as FAIL_AT=2 can mean
# "from the second alert check on".
PRELUDE = r"""#!/bin/bash
count() { local n; n=$(($(cat "$CALLS.$1" 2>/dev/null || echo 0) + 1)); echo "$n" > "$CALLS.$1"; echo "$n"; }
"""


def records_only(command: str) -> str:
    """A stand-in that records its call and does nothing else."""
    return f"printf '{command} %s\\n' \"$*\" >> \"$CALLS\"\n"


# A release's pauses take no time, and the test reads them back as "sleep 60" lines among the calls.
SLEEP = records_only("sleep")


def monitoring_alerts_curl(service: str) -> str:
    """curl as Cloud Monitoring's alerts API answers the release gate of the mlgen service
    `service`: another policy's alert is open always, the release policy's from the OPEN_AT-th
    check on; from the FAIL_AT-th check the answer cannot be read (curl fails as on an HTTP error).
    The header deploy.sh hands curl on stdin (the token stays off the command line) is recorded
    after a `|`."""
    return r"""header=$(cat)
printf 'curl %s | %s\n' "$*" "$header" >> "$CALLS"
checks=$(count checks)
((FAIL_AT > 0 && checks >= FAIL_AT)) && exit 22
other='{"name": "projects/p1/alerts/1", "state": "OPEN", "policy": {"displayName": "mlgen SERVICE: no-traffic"}}'
release='{"name": "projects/p1/alerts/2", "state": "OPEN", "policy": {"displayName": "mlgen SERVICE: release"}}'
if ((OPEN_AT > 0 && checks >= OPEN_AT)); then echo "{\"alerts\": [$other, $release]}"; else echo "{\"alerts\": [$other]}"; fi
""".replace("SERVICE", service)


def run_with_fakes(bundle: Path, work: Path, fakes: Mapping[str, str], *args: str, script: str = "deploy.sh",
                   knobs: Mapping[str, object] | None = None,
                   timeout: float = 60) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs `bash script args…` in `bundle` with the stand-ins `fakes` (name: bash body, after
    PRELUDE) first on PATH, HOME at `work` and each knob in the environment as text; returns the
    process and the calls the stand-ins recorded."""
    fake_bin = work / "fake-bin"
    fake_bin.mkdir(parents=True, exist_ok=True)
    for name, body in fakes.items():
        (fake_bin / name).write_text(PRELUDE + body)
        (fake_bin / name).chmod(0o755)
    calls = _unused_calls_file(work)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(work), "CALLS": str(calls),
           **{name: str(value) for name, value in (knobs or {}).items()}}
    result = subprocess.run(["bash", script, *args], cwd=bundle, capture_output=True, text=True, timeout=timeout, env=env)
    return result, calls.read_text().splitlines()


def _unused_calls_file(work: Path) -> Path:
    # A file of its own for every run, even the second one in the same folder: the counters of
    # `count` live beside it and must start from 0 again.
    for number in itertools.count(1):
        calls = work / f"calls-{number}"
        if not calls.exists():
            return calls
