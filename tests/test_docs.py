"""Documentation that cannot drift: the spec reference is generated from the schema."""

from __future__ import annotations

from helpers import ROOT
from mlgen.docs import spec_reference


def test_docs_spec_md_matches_the_schema() -> None:
    committed = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    assert committed == spec_reference(), "docs/spec.md is stale: run python -m mlgen.docs > docs/spec.md"


def test_every_schema_field_is_described() -> None:
    reference = spec_reference()
    rows = [line for line in reference.splitlines() if line.startswith("| `")]
    undocumented = [row.split("|")[1].strip() for row in rows if not row.rstrip(" |").split("|")[-1].strip()]
    assert not undocumented, f"fields without a description in the schema: {undocumented}"


def test_docs_choosing_a_target_matches_the_limits_mlgen_checks() -> None:
    from mlgen.choosing import choosing_a_target

    committed = (ROOT / "docs" / "choosing-a-target.md").read_text(encoding="utf-8")
    assert committed == choosing_a_target(), "stale: run python -m mlgen.choosing > docs/choosing-a-target.md"
