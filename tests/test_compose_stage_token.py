"""A split pipeline under compose has no NetworkPolicy: the gateway and its stages share a token, a
compose secret made by compose-up.sh the first time it runs (random, never in a rendered file or
the image), named to the runtime by MLGEN_STAGE_TOKEN_CREDENTIAL; compose.yaml stays valid against
the compose specification. A one-stage service has nothing to guard and gets none of it. The
runtime's side (refusals, the gateway sending it) is tests/runtime/test_stage_token.py."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool

FAKE_DOCKER = """#!/bin/sh
printf '%s\\n' "$*" >>"$(dirname "$0")/calls"
"""


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return render_spec(EXAMPLES / "recsys-microservices" / "spec.yaml", "kubernetes", tmp_path_factory.mktemp("split"))


def test_every_stage_reads_the_shared_token_from_a_compose_secret(split) -> None:
    compose = yaml.safe_load((split / "compose.yaml").read_text())
    stages = [name for name in compose["services"] if name != "recsys-prometheus"]
    assert stages == ["recsys-gateway", "recsys-preprocess", "recsys-predict", "recsys-postprocess"]
    for name in stages:
        service = compose["services"][name]
        assert service["secrets"] == ["mlgen-stage-token"], name
        assert service["environment"]["CREDENTIALS_DIRECTORY"] == "/run/secrets"
        assert service["environment"]["MLGEN_STAGE_TOKEN_CREDENTIAL"] == "mlgen-stage-token"
    assert compose["secrets"] == {"mlgen-stage-token": {"file": "./secrets/stage-token"}}
    assert "secrets" not in compose["services"]["recsys-prometheus"]
    assert (split / ".dockerignore").read_text().splitlines()[1:3] == ["*", "!app/"]  # secrets/ stays out of the image
    result = subprocess.run([require_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(split / "compose.yaml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_up_makes_the_token_once_keeps_it_private_and_starts_compose(split, tmp_path) -> None:
    shellchecked = subprocess.run([require_tool("shellcheck"), "--severity=style", str(split / "compose-up.sh")],
                                  capture_output=True, text=True)
    assert shellchecked.returncode == 0, shellchecked.stdout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = lambda *args: subprocess.run([str(split / "compose-up.sh"), *args], capture_output=True, text=True,  # noqa: E731
                                       env=env, timeout=60)
    token_file = split / "secrets" / "stage-token"

    dry = run("--dry-run")
    assert dry.returncode == 0 and "would: make a random stage token" in dry.stdout and not token_file.exists(), dry.stderr
    first = run("--", "--detach")
    assert first.returncode == 0, first.stderr
    token = token_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700  # nobody else on the machine enters
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o444  # the containers' user reads the mounted file
    second = run()
    assert second.returncode == 0 and "ok: the stage token is in secrets/stage-token" in second.stdout
    assert token_file.read_text().strip() == token
    assert (bin_dir / "calls").read_text().splitlines() == ["compose up --build --detach", "compose up --build"]
    holding = [p for p in split.rglob("*") if p.is_file() and p != token_file and token in p.read_text(errors="replace")]
    assert holding == []


def test_a_one_stage_service_has_no_token_to_share(tmp_path) -> None:
    bundle = render_spec(EXAMPLES / "iris" / "spec.yaml", "kubernetes", tmp_path)
    compose = yaml.safe_load((bundle / "compose.yaml").read_text())
    assert "secrets" not in compose and not (bundle / "compose-up.sh").exists()
