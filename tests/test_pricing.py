"""Each provider's own worked pricing example, reproduced to the cent, and each estimate
recomputed by hand for fixed inputs. Inputs and sources are stated with every example."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path

import pytest

from mlgen.pricing import fleets, functions
from mlgen.pricing.estimate import HOURS_PER_MONTH, Traffic
from mlgen.pricing.prices import builtin
from mlgen.pricing.table import Price

PRICES = builtin()


def cents(value: float) -> float:
    return round(value + 1e-9, 2)


def test_lambda_example_1_from_the_pricing_page_with_the_free_tier() -> None:
    # https://aws.amazon.com/lambda/pricing/ Example 1 (US East): 512 MB, 3 million runs of 1 s a
    # month; the page uses $0.00001667 per GB-s, the free tier of 1M requests and 400,000 GB-s,
    # and arrives at $18.34 compute + $0.40 requests = $18.74.
    page = replace(PRICES, prices={**PRICES.prices, "aws.lambda.gb_second.x86_64@us-east-1": Price(
        0.00001667, "USD per GB-second", "https://aws.amazon.com/lambda/pricing/", "2026-11-30")})
    bill = functions.aws_lambda(page, "us-east-1", requests=3_000_000, run_s=1.0, memory_mb=512,
                                free_tier=True, api_gateway=False)
    assert dict((what, cents(usd)) for what, usd in bill.parts) == {"requests": 0.40, "GB-seconds": 18.34}
    assert cents(bill.monthly) == 18.74


def test_lambda_1ms_billing_example_without_the_free_tier() -> None:
    # https://aws.amazon.com/blogs/aws/new-for-aws-lambda-1ms-billing-granularity-adds-cost-savings/
    # 60 million runs of 28 ms at 1 GB (1,024 MB) in US East, "not considering the Lambda free
    # tier": $12 of requests + $28 of compute = $40.
    bill = functions.aws_lambda(PRICES, "us-east-1", requests=60_000_000, run_s=0.028, memory_mb=1024,
                                api_gateway=False)
    assert [(what, cents(usd)) for what, usd in bill.parts] == [("requests", 12.00), ("GB-seconds", 28.00)]
    assert cents(bill.monthly) == 40.00


def test_lambda_bills_each_run_rounded_up_to_a_millisecond_plus_the_http_api() -> None:
    bill = functions.aws_lambda(PRICES, "us-east-1", requests=1_000_000, run_s=0.0101, memory_mb=1024)
    # 11 ms billed a run: 1M x 0.011 s x 1 GB = 11,000 GB-s; HTTP API $1.00 per million.
    assert dict(bill.parts) == pytest.approx({"requests": 0.20, "GB-seconds": 11_000 * 0.0000166667,
                                              "API gateway (HTTP API)": 1.00})


def test_lambda_provisioned_concurrency_is_paid_all_month_and_cheaper_per_run() -> None:
    bill = dict(functions.aws_lambda(PRICES, "us-east-1", requests=1_000_000, run_s=0.1, memory_mb=2048, warm=1,
                                     concurrency=0.5, api_gateway=False).parts)
    assert bill["provisioned concurrency"] == pytest.approx(2 * HOURS_PER_MONTH * 3600 * 0.0000041667)
    assert bill["GB-seconds on provisioned instances"] == pytest.approx(1_000_000 * 0.1 * 2 * 0.0000097222)
    assert bill["GB-seconds"] == 0


def test_azure_consumption_example_from_the_pricing_page() -> None:
    # https://azure.microsoft.com/pricing/details/functions/ pricing example: a function with
    # 1,536 MB of observed memory runs 2,000,000 times a month for 1 s. The copy read for the
    # table shows these inputs but not the page's figures (a script fills them in), so the total
    # is recomputed from the page's rates ($0.000016 per GB-s, $0.20 per million executions) and
    # free grant (400,000 GB-s, 1M executions): 2,600,000 GB-s = $41.60, 1M executions = $0.20.
    bill = functions.azure_functions(PRICES, "eastus", requests=2_000_000, run_s=1.0, memory_mb=1536, free_tier=True)
    assert [(what, cents(usd)) for what, usd in bill.parts] == [("executions", 0.20), ("GB-seconds", 41.60)]
    assert cents(bill.monthly) == 41.80


def test_azure_consumption_rounds_memory_to_128_mb_and_runs_to_at_least_100_ms() -> None:
    bill = dict(functions.azure_functions(PRICES, "eastus", requests=1_000_000, run_s=0.004, memory_mb=130).parts)
    assert bill["GB-seconds"] == pytest.approx(1_000_000 * 0.1 * 256 / 1024 * 0.000016)


def test_cloud_run_functions_bill_the_vcpu_that_comes_with_the_memory() -> None:
    # https://cloud.google.com/run/pricing gives Tier 1 rates and a free tier but no worked
    # example: 10M requests of 150 ms (billed 200 ms) at 512 MB (0.333 vCPU), free tier applied.
    bill = dict(functions.gcp_functions(PRICES, "us-central1", requests=10_000_000, run_s=0.15, memory_mb=512,
                                        free_tier=True).parts)
    seconds = 10_000_000 * 0.2
    assert bill == pytest.approx({"requests": 8_000_000 * 0.40e-6,
                                  "vCPU-seconds": (seconds * 0.333 - 180_000) * 0.000024,
                                  "GiB-seconds": (seconds * 0.5 - 360_000) * 0.0000025})


def test_a_vm_fleet_runs_the_peak_replicas_while_traffic_flows_and_its_minimum_otherwise() -> None:
    # 0.4 sustained vCPU x 70 % / 10 ms = 28 req/s an instance: a peak of 100 needs 4.
    traffic = Traffic(rps=50, peak_rps=100, hours_per_day=12)
    bill = fleets.vm_fleet(PRICES, "aws", "eu-west-1", traffic, instance_type="t3.small", run_s=0.01,
                           bytes_per_request=2000, target_cpu_percent=70, min_size=1, max_size=3, artifact_mb=None)
    parts = dict(bill.parts)
    assert parts["t3.small instance-hours"] == pytest.approx((4 * 365 + 1 * 365) * 0.0228)
    assert parts["load balancer hours"] == pytest.approx(730 * 0.0252)
    # 50 new connections a second = 2 LCU (> 0.36 GB an hour), for the 365 hours of traffic.
    assert parts["load balancer capacity units"] == pytest.approx(2 * 365 * 0.008)
    assert any("more than scaling.max_replicas (3)" in note for note in bill.notes)


def test_kubernetes_pays_the_share_of_a_node_its_pods_reserve() -> None:
    node = fleets.Node(hourly=0.20, cpus=4, memory_gib=16)
    bill = fleets.kubernetes(PRICES, node, Traffic(10, 10), pod_cpus=1, pod_memory_gib=2, run_s=0.05,
                             target_cpu_percent=50, min_replicas=1, lb_provider="gcp", lb_region="us-central1",
                             bytes_per_request=1000)
    # 1 vCPU x 50 % / 50 ms = 10 req/s a pod: one pod, a quarter of a node (CPU is the larger share).
    assert dict(bill.parts)["node share"] == pytest.approx(730 * 0.25 * 0.20)
    assert fleets.kubernetes(PRICES, None, Traffic(1, 1), pod_cpus=1, pod_memory_gib=1, run_s=0.01,
                             target_cpu_percent=50, min_replicas=1, lb_provider="aws", lb_region="us-east-1",
                             bytes_per_request=1).unpriced


def test_onprem_is_the_hardware_over_its_months_plus_power() -> None:
    bill = fleets.onprem(fleets.Host(cost=3600, months=36, watts=100, kwh_price=0.25))
    assert dict(bill.parts) == pytest.approx({"hardware, amortised": 100.0, "power": 0.1 * 730 * 0.25})
    assert fleets.onprem(None).unpriced.startswith("give the hardware's cost")


def test_every_built_in_price_names_its_source_and_date() -> None:
    for key, price in PRICES.prices.items():
        assert price.source.startswith("https://") and datetime.date.fromisoformat(price.as_of), key


def test_a_price_table_older_than_a_year_is_flagged_against_the_date_given() -> None:
    made = datetime.date.fromisoformat(PRICES.as_of)
    assert PRICES.stale(made + datetime.timedelta(days=365)) is None
    assert "more than a year" in PRICES.stale(made + datetime.timedelta(days=366))


def test_a_users_price_file_replaces_a_price_and_adds_a_region(tmp_path: Path) -> None:
    mine = tmp_path / "prices.yaml"
    mine.write_text("source: our enterprise agreement\nas_of: 2026-10-01\nprices:\n"
                    "  aws.ec2.t3.small@eu-west-1: 0.02\n  aws.ec2.t3.small@eu-central-1: {value: 0.024, as_of: 2026-09-01}\n"
                    "cpu_factors:\n  t3: 1.5\n")
    table = PRICES.merged(mine)
    assert table.need("aws.ec2.t3.small", "eu-west-1") == Price(0.02, "USD per instance-hour", "our enterprise agreement", "2026-10-01")
    assert table.need("aws.ec2.t3.small", "eu-central-1").value == 0.024
    assert table.as_of == "2026-09-01" and table.cpu_factors["t3"] == 1.5
