"""The real Azure CLI as the checker of rendered Azure scripts, offline.

az parses a command's arguments and enum values before it asks for an account, so with an empty
configuration folder and no login a command that is right fails only with "Please run 'az login'",
while a misspelt flag fails with "unrecognized arguments" and a wrong value with "not a valid value
… Allowed values: …". A script's `--dry-run` prints every command it would run (`+ az …`, from the
shared prelude's `run` and `lookup`), so:

    verdicts = check_script(bundle / "deploy.sh", tmp_path)
    assert all(v.accepted for v in verdicts), "\\n".join(map(str, verdicts))

az takes about a second to start, so the commands of one call run in one az process, one after
another, each through az's own entry point (`get_default_cli().invoke`, what the `az` command runs)
with its own stderr; an `az` that is not a virtual environment of its own falls back to one process
per command.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from helpers import require_tool

LOGIN_NEEDED = "Please run 'az login'"
# Runs inside az's own virtual environment: each command as `az ARGS…` would, stderr kept per command.
_BATCH = r"""
import io, json, os, sys, tempfile
from azure.cli.core import get_default_cli
verdicts, saved = [], os.dup(2)
for args in json.load(sys.stdin):
    with tempfile.TemporaryFile() as err:
        sys.stderr.flush()
        os.dup2(err.fileno(), 2)
        try:
            code = get_default_cli().invoke(args, out_file=io.StringIO())
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
        err.seek(0)
        verdicts.append([code, err.read().decode(errors="replace")])
json.dump(verdicts, sys.stdout)
"""


@dataclass(frozen=True)
class Verdict:
    command: tuple[str, ...]  # as the script printed it, starting with "az"
    returncode: int
    message: str  # what az wrote on stderr

    @property
    def accepted(self) -> bool:
        """az parsed every argument and value and stopped only for the missing login."""
        return LOGIN_NEEDED in self.message

    def __str__(self) -> str:
        first = next((line for line in self.message.splitlines() if line.strip()), "(no message)")
        return f"{shlex.join(self.command)}\n  → {first}"


def dry_run_commands(script: Path, cli: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """The commands `script --dry-run` prints (`+ CLI ARG…` lines), each split as the shell would."""
    result = subprocess.run([str(script), "--dry-run"], capture_output=True, text=True, timeout=60,
                            env=env or {"PATH": "/usr/bin:/bin", "HOME": str(script.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands and all(command[0] == cli for command in commands), result.stdout
    return commands


def check_commands(commands: list[list[str]], work: Path, cwd: Path | None = None) -> list[Verdict]:
    """az's verdict on each command (`["az", "vmss", "create", …]`), run with an empty
    AZURE_CONFIG_DIR under `work`, no account and no network access needed; `cwd` is where
    relative file arguments (such as --custom-data) are read from."""
    az = require_tool("az")
    config = work / "azure-config"
    config.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AZURE_CONFIG_DIR": str(config), "AZURE_CORE_COLLECT_TELEMETRY": "false",
           "AZURE_CORE_NO_COLOR": "true"}
    for name in ("AZURE_DEFAULTS_LOCATION", "AZURE_DEFAULTS_GROUP", "AZURE_SUBSCRIPTION_ID"):
        env.pop(name, None)
    args = [command[1:] for command in commands]
    python = Path(az).parent / "python"
    if python.exists():
        result = subprocess.run([str(python), "-c", _BATCH], input=json.dumps(args), capture_output=True, text=True,
                                env=env, cwd=cwd, timeout=60 + 10 * len(args))
        assert result.returncode == 0, result.stderr
        answers = json.loads(result.stdout)
    else:
        def one(arguments):
            done = subprocess.run([az, *arguments], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
            return [done.returncode, done.stderr]

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(one, args))
    return [Verdict(tuple(command), code, message) for command, (code, message) in zip(commands, answers)]


def check_script(script: Path, work: Path) -> list[Verdict]:
    """az's verdict on every az command `script --dry-run` prints."""
    return check_commands(dry_run_commands(script, "az"), work, cwd=script.parent)
