"""A model kept in storage (model.uri) is promoted or rolled back by changing model.uri,
model.sha256 and model.version: every target's bundle is otherwise byte-identical, so
`mlgen render --check` shows exactly those lines, and nothing else would be shipped."""

from __future__ import annotations

import re
import shutil

import pytest

from helpers import EXAMPLES, run_mlgen

OLD = {"uri": "s3://acme-ml-models/iris/2026-11-30/model.joblib",
       "sha256": "795e4c457ef937cbc3420d63141b2370b7867e6965943bcd46915db7d3a5e416", "version": "2026-11-30"}
NEW = {"uri": "s3://acme-ml-models/iris/2026-10-02/model.joblib", "sha256": "ab" * 32, "version": "2026-10-02"}


def _changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("target", ["onprem", "cloud", "kubernetes", "serverless"])
def test_rolling_the_model_back_changes_only_its_uri_hash_and_version(tmp_path, target):
    folder = tmp_path / "service"
    shutil.copytree(EXAMPLES / "iris-s3", folder)
    spec = folder / "spec.yaml"
    text = spec.read_text()
    assert all(value in text for value in OLD.values())
    rendered = run_mlgen("render", spec, "-t", target, "-o", tmp_path / "out")
    assert rendered.returncode == 0, rendered.stderr
    for field, value in OLD.items():
        text = text.replace(value, NEW[field])
    spec.write_text(text)

    check = run_mlgen("render", spec, "-t", target, "-o", tmp_path / "out", "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    changed = _changed_lines(check.stdout)
    assert changed, check.stdout
    # Each changed line names the model's URI, hash or version; a VM bundle's archive is the one
    # derived file that changes with them (cloud-init carries its sha256 to check the download).
    derived = re.compile(r"\b[0-9a-f]{64}\b|bundle\.tar\.gz")
    unexpected = [line for line in changed
                  if not any(value in line for value in (*OLD.values(), *NEW.values())) and not derived.search(line)]
    assert not unexpected, "\n".join(unexpected)
    assert any(NEW["uri"] in line for line in changed) and any(NEW["sha256"] in line for line in changed)
