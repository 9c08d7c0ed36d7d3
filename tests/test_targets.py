"""Every registered target is a whole folder: it declares its settings schema (merged into the
published schema, which must not be stale), a trade-off row, a docs page, goldens for each variant
and hostile-spec variants. A target that lacks one of these fails here, not in review."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT
from mlgen import targets
from mlgen.resources import schema_path

REGISTERED = targets.available()


def test_the_published_schema_is_the_core_plus_every_targets_fragment():
    from mlgen.schema import published_text

    assert schema_path().read_text(encoding="utf-8") == published_text(), \
        "specs/mlgen.v1.schema.json is stale: run python -m mlgen.schema > specs/mlgen.v1.schema.json"


@pytest.mark.parametrize("name", REGISTERED)
def test_the_target_declares_its_settings_docs_and_trade_off(name):
    target = targets.get(name)
    published = json.loads(schema_path().read_text())["properties"]["targets"]["properties"]
    assert target.schema and published[name]["description"] == target.schema["description"]
    assert target.schema.get("additionalProperties") is False, "unknown settings must be refused"
    assert target.trade_off and target.trade_off.choose_when and target.trade_off.give_up
    assert target.docs and (ROOT / target.docs).is_file(), f"{name} has no docs page"
    assert f"`{name}`" in (ROOT / "docs" / "choosing-a-target.md").read_text()


@pytest.mark.parametrize("name", REGISTERED)
def test_the_target_has_goldens_for_every_variant(name):
    """Each variant has its own golden tree, or is what an example already renders as written."""
    from test_golden import CASES, goldens

    written = [case for case in CASES if case.target == name and not case.variant]
    assert written, f"no example configures {name}"
    with_tree = {case.variant for case in CASES if case.target == name}
    for variant, settings in targets.get(name).all_variants().items():
        if variant in with_tree:
            continue
        as_written = []
        for case in written:
            spec = goldens.EXAMPLES / case.example / "spec.yaml"
            settings_as_written = goldens.load_spec(spec).target(name)
            if "provider" in settings and settings["provider"] == settings_as_written.get("provider"):
                as_written.append(True)  # that provider's tree is the example as written
                continue
            sets = goldens.variant_sets(name, settings_as_written, settings)
            as_written.append(goldens.load_spec(spec, sets=sets).target(name) == settings_as_written)
        assert any(as_written), f"{name}: variant {variant!r} has no golden tree"


@pytest.mark.parametrize("name", REGISTERED)
def test_the_target_is_attacked_by_the_hostile_spec_tests(name):
    pytest.importorskip("hypothesis")
    from hostile import VARIANTS

    attacked = {variant.target for variant in VARIANTS.values()}
    assert name in attacked, f"no hostile-spec variant renders {name}"
    expected = {f"{name}-{variant}" if variant else name for variant in targets.get(name).all_variants()}
    assert expected <= set(VARIANTS), f"{name}: variants without hostile specs: {expected - set(VARIANTS)}"
