"""`mlgen plan --rps`: a user asks what serving their model costs on every target, and where
functions stop being cheaper than a fleet."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import EXAMPLES, run_mlgen
from mlgen.pricing.prices import AS_OF

IRIS = EXAMPLES / "iris" / "spec.yaml"


def plan_json(*args) -> dict:
    result = run_mlgen("plan", IRIS, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    (assessment,) = json.loads(result.stdout)
    return assessment


def test_a_ci_job_gets_every_target_priced_with_the_table_date_and_the_break_even() -> None:
    costs = plan_json("--no-measure", "--rps", "5", "--request-ms", "20", "--today", AS_OF)["costs"]
    assert costs["price_table_date"] == AS_OF and costs["warnings"] == []
    assert costs["traffic"] == {"rps": 5.0, "peak_rps": 10.0, "hours_per_day": 24.0,
                                "requests_per_month": 13_140_000, "free_tier": False}
    estimates = {e["option"]: e for e in costs["estimates"]}
    # The spec's fleet: t3.small in eu-west-1, one instance all month behind an ALB.
    fleet = estimates["cloud/aws"]["parts"]
    assert fleet["t3.small instance-hours"] == round(730 * 0.0228, 2)
    assert fleet["load balancer hours"] == round(730 * 0.0252, 2)
    assert estimates["onprem"]["unpriced"] and estimates["kubernetes"]["monthly_usd"] is None
    # Lambda at 1,024 MB gets 0.58 of a vCPU: 20 ms here bills 35 ms there.
    assert estimates["serverless/aws"]["parts"]["GB-seconds"] == round(13_140_000 * 0.035 * 0.0000166667, 2)
    assert set(costs["break_even_rps"]) == {"aws", "gcp", "azure"}
    assert 1 < costs["break_even_rps"]["aws"] < 100


def test_an_old_price_table_is_flagged_and_the_text_says_it_is_not_a_quote() -> None:
    result = run_mlgen("plan", IRIS, "--no-measure", "--rps", "1", "--request-ms", "5", "--today", "2029-01-01")
    assert result.returncode == 0, result.stderr
    assert f"list prices of {AS_OF}, not a quote" in result.stdout
    assert "warning: the price table is from" in result.stdout
    assert "break-even: serverless/aws costs less than cloud/aws below" in result.stdout


def test_the_users_node_price_and_hardware_price_the_cluster_and_the_host(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("source: quote from our reseller\nas_of: 2026-11-01\nprices:\n  aws.ec2.t3.small@eu-west-1: 0.01\n")
    costs = plan_json("--no-measure", "--rps", "2", "--request-ms", "5", "--prices", prices, "--node-price", "0.2",
                      "--hardware-cost", "3600", "--today", "2026-12-01")["costs"]
    estimates = {e["option"]: e for e in costs["estimates"]}
    assert costs["price_table_date"] == "2026-11-01"
    assert estimates["cloud/aws"]["parts"]["t3.small instance-hours"] == 7.30
    assert estimates["onprem"]["parts"]["hardware, amortised"] == 100.0
    # iris requests 1 CPU and 512Mi: a quarter of a 4-vCPU node.
    assert estimates["kubernetes"]["parts"]["node share"] == round(730 * 0.25 * 0.2, 2)


def test_without_a_measurement_or_a_time_per_request_plan_says_what_it_needs() -> None:
    assert "--request-ms" in plan_json("--no-measure", "--rps", "3")["costs"]


def test_plan_measures_one_prediction_and_prices_with_it() -> None:
    assessment = plan_json("--rps", "10")
    assert 0 < assessment["measured"]["request_s"] < assessment["measured"]["load_s"]
    assert assessment["costs"]["request_ms_measured"] is True
    assert any("the cheapest at this traffic" in line for line in assessment["recommendation"])


def test_a_spec_that_allows_only_some_networks_is_advised_to_stay_on_premises() -> None:
    advice = plan_json("--no-measure", "--set", 'targets.onprem.ip_address_allow=["10.0.0.0/8"]',
                       "--set", "targets.onprem.ip_address_deny=[any]")["recommendation"]
    assert any(line.startswith("onprem: the spec keeps the service on a closed network") for line in advice)
    assert not any("closed network" in line for line in plan_json("--no-measure")["recommendation"])
