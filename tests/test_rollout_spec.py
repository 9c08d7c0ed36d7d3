"""`rollout`: how a new version reaches traffic. The steps and the gate are checked where the spec
writes them (increasing weights ending at 100, a pause on every step but the last, fields of
another strategy), the gate defaults to the SLO's own thresholds, and a target that does not carry
out a strategy refuses it at rollout.strategy instead of releasing all at once behind the user's back."""

from __future__ import annotations

import pytest

from helpers import EXAMPLES, run_mlgen
from mlgen.spec import load_spec

IRIS = EXAMPLES / "iris" / "spec.yaml"


def test_the_default_is_all_at_once_and_a_canary_gate_comes_from_the_slo():
    assert load_spec(IRIS).rollout.strategy == "all_at_once"
    canary = load_spec(IRIS, sets=("rollout.strategy=canary", "observability.slo.availability_percent=99.9",
                                   "observability.slo.latency_p99_ms=250")).rollout
    assert [(s.weight, s.pause_s) for s in canary.steps] == [(10, 300), (50, 300), (100, 0)]
    assert canary.max_error_ratio == pytest.approx(0.001) and canary.max_latency_p99_ms == 250
    overridden = load_spec(IRIS, sets=("rollout.strategy=blue_green", "rollout.preview=90s",
                                       "rollout.analysis={max_error_percent: 2, max_latency_p99_ms: 900}")).rollout
    assert (overridden.preview_s, overridden.max_error_ratio, overridden.max_latency_p99_ms) == (90, 0.02, 900)


@pytest.mark.parametrize("sets, expected", [
    (["rollout.steps=[{weight: 50, pause: 5m}, {weight: 20}]"], "rollout.steps[1].weight: weight 20 does not increase"),
    (["rollout.steps=[{weight: 10, pause: 5m}, {weight: 60}]"], "rollout.steps[1].weight: the last step has weight 60"),
    (["rollout.steps=[{weight: 10}, {weight: 100}]"], "rollout.steps[0]: every step but the last needs a pause"),
    (["rollout.steps=[{weight: 10, pause: 1m}, {weight: 100, pause: 1m}]"], "rollout.steps[1].pause: the last step needs no pause"),
    (["rollout.steps=[{weight: 10, pause: 5 minutes}, {weight: 100}]"], "rollout.steps[0].pause"),
    (["rollout.preview=1m"], "rollout.preview: preview is for rollout.strategy blue_green, not canary"),
])
def test_a_canary_mistake_is_a_located_error(sets, expected):
    arguments = [item for value in ["rollout.strategy=canary", *sets] for item in ("--set", value)]
    result = run_mlgen("validate", IRIS, *arguments)
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_target_that_does_not_carry_out_a_strategy_refuses_it(tmp_path):
    from mlgen import targets

    unable = next((name for name in targets.BUILTIN if "blue_green" not in targets.get(name).rollouts), None)
    if unable is None:
        pytest.fail("every target releases blue_green now: pick a strategy one of them refuses")
    result = run_mlgen("render", IRIS, "--set", "rollout.strategy=blue_green", "-t", unable, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert f"rollout.strategy: the {unable} target cannot release with blue_green" in result.stderr
    assert not (tmp_path / "out" / unable).exists()
