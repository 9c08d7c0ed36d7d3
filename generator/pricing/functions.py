"""Monthly bills of the three function platforms, from monthly requests and the billed time of
one run on the platform (the caller scales the time measured here, see cpu.py).

Free tiers are applied only when asked: they belong to the account, shared by everything in it.
"""

from __future__ import annotations

from mlgen.pricing.cpu import gcf_vcpu
from mlgen.pricing.estimate import HOURS_PER_MONTH, Estimate, billable, round_up
from mlgen.pricing.table import PriceTable

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


def aws_lambda(prices: PriceTable, region: str, *, requests: float, run_s: float, memory_mb: int,
               architecture: str = "x86_64", warm: int = 0, concurrency: float = 0.0,
               free_tier: bool = False, api_gateway: bool = True) -> Estimate:
    """Lambda bills each run rounded up to 1 ms at the configured memory. `warm` instances of
    provisioned concurrency are paid all month and serve up to `warm` of the `concurrency` the
    traffic needs at a lower duration rate; the free tier does not cover them."""
    gb = memory_mb / 1024
    gb_s = requests * round_up(run_s, 0.001) * gb
    on_warm = min(1.0, warm / concurrency) if warm and concurrency else (1.0 if warm else 0.0)
    rate = prices.need(f"aws.lambda.gb_second.{architecture}", region).value
    free = prices.need("aws.lambda.free_gb_seconds").value
    parts = [("requests", billable(requests, prices.need("aws.lambda.free_requests").value, free_tier)
              * prices.need("aws.lambda.request", region).value),
             ("GB-seconds", billable(gb_s * (1 - on_warm), free, free_tier) * rate)]
    if warm:
        parts += [("provisioned concurrency", warm * gb * SECONDS_PER_MONTH
                   * prices.need(f"aws.lambda.provisioned_gb_second.{architecture}", region).value),
                  ("GB-seconds on provisioned instances", gb_s * on_warm
                   * prices.need(f"aws.lambda.provisioned_duration_gb_second.{architecture}", region).value)]
    if api_gateway:
        parts.append(("API gateway (HTTP API)", requests * prices.need("aws.apigateway.http_request", region).value))
    return Estimate("serverless/aws", tuple(parts), (f"{memory_mb} MB, {round_up(run_s, 0.001) * 1000:.0f} ms "
                                                     "billed a run (1 ms steps)",))


def gcp_functions(prices: PriceTable, region: str, *, requests: float, run_s: float, memory_mb: int,
                  warm: int = 0, free_tier: bool = False) -> Estimate:
    """Cloud Run functions bill the vCPU and memory that come with the memory size while a request
    runs, rounded up to 100 ms (one request per instance); minimum instances idle at a lower rate."""
    vcpu, gib = gcf_vcpu(memory_mb), memory_mb / 1024
    seconds = requests * round_up(run_s, 0.1)
    parts = [("requests", billable(requests, prices.need("gcp.functions.free_requests").value, free_tier)
              * prices.need("gcp.functions.request", region).value),
             ("vCPU-seconds", billable(seconds * vcpu, prices.need("gcp.functions.free_vcpu_seconds").value,
                                       free_tier) * prices.need("gcp.functions.vcpu_second", region).value),
             ("GiB-seconds", billable(seconds * gib, prices.need("gcp.functions.free_gib_seconds").value,
                                      free_tier) * prices.need("gcp.functions.gib_second", region).value)]
    if warm:
        idle_s = max(0.0, warm * SECONDS_PER_MONTH - seconds)
        parts.append(("minimum instances (idle)", idle_s * (vcpu * prices.need("gcp.functions.idle_vcpu_second", region).value
                                                            + gib * prices.need("gcp.functions.idle_gib_second", region).value)))
    return Estimate("serverless/gcp", tuple(parts), (f"{memory_mb} MB with {vcpu:g} vCPU, "
                                                     f"{round_up(run_s, 0.1) * 1000:.0f} ms billed a run (100 ms steps)",))


def azure_functions(prices: PriceTable, region: str, *, requests: float, run_s: float, memory_mb: int,
                    plan: str = "consumption", free_tier: bool = False) -> Estimate:
    """Consumption bills observed memory rounded up to 128 MB (at most 1,536 MB) and at least
    100 ms a run; Flex Consumption on demand bills the instance memory chosen (512, 2,048 or
    4,096 MB). Premium and always-ready instances are not in the built-in table."""
    if plan == "consumption":
        memory = min(1536, -(-int(memory_mb) // 128) * 128)
    elif plan == "flex":
        memory = next((size for size in (512, 2048, 4096) if size >= memory_mb), 4096)
    else:
        return Estimate("serverless/azure", unpriced=f"the {plan} plan is billed per instance: add its prices with --prices")
    billed = max(0.1, round_up(run_s, 0.001))
    key = f"azure.functions.{plan}"
    gb_s = requests * billed * memory / 1024
    parts = (("executions", billable(requests, prices.need(f"{key}.free_executions").value, free_tier)
              * prices.need(f"{key}.execution", region).value),
             ("GB-seconds", billable(gb_s, prices.need(f"{key}.free_gb_seconds").value, free_tier)
              * prices.need(f"{key}.gb_second", region).value))
    return Estimate("serverless/azure", parts, (f"{plan} plan, {memory} MB billed, {billed * 1000:.0f} ms a run",))
