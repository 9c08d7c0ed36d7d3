"""A model kept in storage (model.uri) is promoted or rolled back by changing model.uri,
model.sha256 and model.version: every target's bundle is otherwise byte-identical, so
`mlgen render --check` shows exactly those lines, and nothing else would be shipped."""

from __future__ import annotations

import difflib
import io
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_mlgen

OLD = {"uri": "s3://acme-ml-models/iris/2026-11-30/model.joblib",
       "sha256": "795e4c457ef937cbc3420d63141b2370b7867e6965943bcd46915db7d3a5e416", "version": "2026-11-30"}
# The new object's key does not repeat the version: a line that names the object must match its URI.
NEW = {"uri": "s3://acme-ml-models/iris/previous/model.joblib", "sha256": "ab" * 32, "version": "2026-10-02"}
# What a changed line may name: the URI (or its bucket/key, as an IAM grant on the object does), the
# hash or the version. A VM bundle's archive changes with them, and cloud-init carries its sha256.
NAMED = [*OLD.values(), *NEW.values(), *(uri.removeprefix("s3://") for uri in (OLD["uri"], NEW["uri"]))]
DERIVED = re.compile(r"\b[0-9a-f]{64}\b|bundle\.tar\.gz")


def _unexpected(lines: list[str]) -> list[str]:
    changed = [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return [line for line in changed if not any(value in line for value in NAMED) and not DERIVED.search(line)]


def _texts(folder: Path) -> dict[str, str]:
    """Every file of a bundle as text, an archive's members each under ARCHIVE/MEMBER."""
    texts = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(path.read_bytes())) as archive:
                for member in archive.getmembers():
                    if member.isfile():
                        texts[f"{name}/{member.name}"] = archive.extractfile(member).read().decode("utf-8", "replace")
        else:
            texts[name] = path.read_bytes().decode("utf-8", "replace")
    return texts


@pytest.mark.parametrize("target", ["onprem", "cloud", "kubernetes", "serverless"])
def test_rolling_the_model_back_changes_only_its_uri_hash_and_version(tmp_path, target):
    folder = tmp_path / "service"
    shutil.copytree(EXAMPLES / "iris-s3", folder)
    spec = folder / "spec.yaml"
    text = spec.read_text()
    assert all(value in text for value in OLD.values())
    assert run_mlgen("render", spec, "-t", target, "-o", tmp_path / "old").returncode == 0
    for field, value in OLD.items():
        text = text.replace(value, NEW[field])
    spec.write_text(text)

    check = run_mlgen("render", spec, "-t", target, "-o", tmp_path / "old", "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert not _unexpected(check.stdout.splitlines()), check.stdout

    assert run_mlgen("render", spec, "-t", target, "-o", tmp_path / "new").returncode == 0
    old, new = _texts(tmp_path / "old" / target), _texts(tmp_path / "new" / target)
    assert old.keys() == new.keys()
    diff = [line for name in old for line in difflib.unified_diff(old[name].splitlines(), new[name].splitlines(), n=0)]
    assert not _unexpected(diff), "\n".join(diff)
    assert any(NEW["uri"] in line for line in diff) and any(NEW["sha256"] in line for line in diff)
