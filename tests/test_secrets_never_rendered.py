"""A spec can only reference secrets. With secret-looking values in the environment of mlgen
(under the secrets' own names and the usual cloud credential names), no rendered file of any
target — archives unpacked — and no `--dry-run` output of any script holds one of them."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import yaml

from helpers import EXAMPLES, ROOT, run_mlgen

SECRETS = [{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"}, {"name": "API_TOKEN", "secret": "iris-api"}]
# Values a careless generator could pick up from its own environment.
PLANTED = {
    "DB_PASSWORD": "pw-6f1c9e0b-DB-PLANTED", "API_TOKEN": "tok-2a7d41aa-API-PLANTED",
    "AWS_SECRET_ACCESS_KEY": "aws-93be77f0-PLANTED", "AWS_SESSION_TOKEN": "sess-0c1d-PLANTED",
    "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/gcp-5e2f-PLANTED.json", "AZURE_CLIENT_SECRET": "az-7b3a-PLANTED",
    "MLGEN_SECRET_API_TOKEN": "mlgen-8d0e-PLANTED", "IRIS_DB_PASSWORD": "iris-4c4c-PLANTED",
}
NEEDLES = [value.encode() for value in PLANTED.values()] + [b"PLANTED"]


def spec_with_secret_refs(tmp: Path) -> Path:
    data = yaml.safe_load((EXAMPLES / "iris" / "spec.yaml").read_text())
    data["secrets"] = SECRETS
    (tmp / "spec").mkdir()
    for item in ("model",):
        subprocess.run(["cp", "-r", str(EXAMPLES / "iris" / item), str(tmp / "spec" / item)], check=True)
    spec = tmp / "spec" / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def files_with_secrets(folder: Path) -> list[str]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        blobs = [content]
        if path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(content))) as archive:
                blobs += [archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()]
        if any(needle in blob for blob in blobs for needle in NEEDLES):
            found.append(str(path.relative_to(folder)))
    return found


def test_no_secret_value_reaches_a_rendered_file_or_a_dry_run(tmp_path):
    spec = spec_with_secret_refs(tmp_path)
    out = tmp_path / "out"
    env = {**PLANTED, "PYTHONPATH": str(ROOT)}

    for target in ("kubernetes", "serverless", "onprem", "cloud"):
        rendered = run_mlgen("render", spec, "--target", target, "-o", out, env=env)
        assert rendered.returncode == 0, rendered.stderr
        assert not any(needle.decode() in rendered.stdout + rendered.stderr for needle in NEEDLES)

    assert files_with_secrets(out) == []
    # The references are there: each secret's name reaches the files that wire it up.
    every_file = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"iris-db" in every_file and b"iris-api" in every_file

    dry_runs = 0
    for script in sorted(out.rglob("*.sh")):
        if b"--dry-run" not in script.read_bytes() or script.name == "build-offline-bundle.sh":
            continue
        args = ["--dry-run"]
        if script.name in ("install.sh", "uninstall.sh"):
            (tmp_path / "stage").mkdir(exist_ok=True)
            args += ["--root", str(tmp_path / "stage")]
        if "function_app.py" in os.listdir(script.parent) and script.name == "deploy.sh":
            args += ["--key-vault", "kv-iris"]
        result = subprocess.run(["bash", str(script), *args], cwd=script.parent, capture_output=True, timeout=120,
                                env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **PLANTED}, stdin=subprocess.DEVNULL)
        output = result.stdout + result.stderr
        assert not any(needle in output for needle in NEEDLES), f"{script} printed a secret:\n{output.decode()}"
        dry_runs += 1
    assert dry_runs >= 4


def test_a_spec_cannot_hold_a_secret_value(tmp_path):
    spec = spec_with_secret_refs(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["secrets"][0]["value"] = "hunter2"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_mlgen("render", spec, "-t", "kubernetes", "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "secrets[0]" in result.stderr and "hunter2" not in result.stderr.replace("'hunter2'", "")
    assert not (tmp_path / "out").exists()
