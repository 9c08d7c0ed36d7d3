"""Every target priced for one spec and one traffic profile, and the break-even between functions
and a VM fleet. Settings come from each target's typed settings, one model per provider."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Callable

from mlgen.pricing import fleets, functions
from mlgen.pricing.estimate import Estimate, Traffic, Workload
from mlgen.pricing.table import PriceTable, Unpriced
from mlgen.spec import ServiceModel

PROVIDERS = ("aws", "gcp", "azure")
FUNCTION_FAMILY = {"aws": "lambda-{architecture}", "gcp": "gcp-functions", "azure": "azure-functions"}
BREAK_EVEN_RANGE = (0.01, 10_000.0)  # requests a second searched, on a 1 % grid


@dataclass(frozen=True)
class Inputs:
    """What the spec does not say and the user gave on the command line."""

    node: fleets.Node | None = None
    host: fleets.Host | None = None
    artifact_mb: float | None = None  # the cloud bundle's size, stored next to the fleet


def with_provider(model: ServiceModel, target: str, provider: str) -> ServiceModel:
    """The model as if the spec named `provider` for `target`: each provider is priced with its own
    settings (defaults included) from the same spec."""
    settings = MappingProxyType({**model.target(target), "provider": provider})
    return replace(model, targets=MappingProxyType({**model.targets, target: settings}))


def _region(settings_region: str | None, provider: str, spec_provider: str) -> str:
    """The spec's region belongs to the spec's provider; another provider is priced in its default."""
    from mlgen.targets.serverless.settings import DEFAULT_REGION

    return settings_region if provider == spec_provider and settings_region else DEFAULT_REGION[provider]


Pricer = Callable[[Traffic], Estimate]


def function_pricer(model: ServiceModel, provider: str, work: Workload, prices: PriceTable) -> Pricer:
    """Settings read once; the returned function prices any traffic (the break-even calls it often)."""
    from mlgen.pricing.cpu import gcf_vcpu, lambda_vcpu
    from mlgen.targets.serverless.settings import function_settings

    f = function_settings(with_provider(model, "serverless", provider))
    region = _region(f.region, provider, model.target("serverless")["provider"])
    share = {"aws": lambda_vcpu(f.memory_mb), "gcp": min(1.0, gcf_vcpu(f.memory_mb)), "azure": 1.0}[provider]
    family = FUNCTION_FAMILY[provider].format(architecture=f.architecture)
    factor = prices.cpu_factors.get(family, 1.0)
    run_s = work.request_s * factor / share
    note = f"{region}; a prediction gets {share:.2f} vCPU, time x{factor:g} for {family}"

    def price(traffic: Traffic) -> Estimate:
        common = dict(requests=traffic.requests, run_s=run_s, free_tier=traffic.free_tier)
        if provider == "aws":
            estimate = functions.aws_lambda(prices, region, memory_mb=f.memory_mb, architecture=f.architecture,
                                            warm=f.warm_instances, concurrency=traffic.rps * run_s, **common)
        elif provider == "gcp":
            estimate = functions.gcp_functions(prices, region, memory_mb=f.memory_mb, warm=f.warm_instances, **common)
        else:
            memory = work.memory_mb if f.plan == "consumption" else f.memory_mb  # consumption bills what is used
            estimate = functions.azure_functions(prices, region, plan=f.plan, memory_mb=memory, **common)
        return replace(estimate, notes=(*estimate.notes, note))

    return price


def fleet_pricer(model: ServiceModel, provider: str, work: Workload, prices: PriceTable, inputs: Inputs) -> Pricer:
    from mlgen.targets.cloud.settings import INSTANCE_TYPES, cloud_settings

    spec_provider = model.target("cloud")["provider"]
    c = cloud_settings(with_provider(model, "cloud", provider))
    instance_type = c.instance_type if provider == spec_provider else INSTANCE_TYPES[provider]
    region = _region(c.region, provider, spec_provider)
    return lambda traffic: fleets.vm_fleet(
        prices, provider, region, traffic, instance_type=instance_type, run_s=work.request_s,
        bytes_per_request=work.bytes_per_request, target_cpu_percent=c.target_cpu_percent, min_size=c.min_size,
        max_size=c.max_size, artifact_mb=None if c.inline else inputs.artifact_mb)


def estimates(model: ServiceModel, traffic: Traffic, work: Workload, prices: PriceTable,
              inputs: Inputs = Inputs()) -> list[Estimate]:
    from mlgen.targets.cloud.settings import cloud_settings

    def guarded(label: str, build: Callable[[], Estimate]) -> Estimate:
        try:
            return build()
        except Unpriced as missing:
            return Estimate(label, unpriced=f"{missing}: add it with --prices FILE")

    cloud = cloud_settings(model)
    resources = model.resources
    result = [guarded("onprem", lambda: fleets.onprem(inputs.host))]
    result += [guarded(f"cloud/{p}", lambda p=p: fleet_pricer(model, p, work, prices, inputs)(traffic)) for p in PROVIDERS]
    result.append(guarded("kubernetes", lambda: fleets.kubernetes(
        prices, inputs.node, traffic, pod_cpus=min(resources.millicores / 1000, model.runtime.workers),
        pod_memory_gib=resources.memory_bytes / 2**30, run_s=work.request_s,
        target_cpu_percent=model.scaling.target_cpu_percent, min_replicas=model.scaling.min_replicas,
        lb_provider=cloud.provider, lb_region=_region(cloud.region, cloud.provider, cloud.provider),
        bytes_per_request=work.bytes_per_request)))
    result += [guarded(f"serverless/{p}", lambda p=p: function_pricer(model, p, work, prices)(traffic)) for p in PROVIDERS]
    return result


def break_even(model: ServiceModel, provider: str, traffic: Traffic, work: Workload, prices: PriceTable,
               inputs: Inputs = Inputs()) -> float | None:
    """The average request rate (same peak-to-average ratio and hours) above which the provider's
    functions cost more a month than its VM fleet; None when either is unpriced or one side is
    cheaper over the whole range searched."""
    try:
        function, fleet = function_pricer(model, provider, work, prices), fleet_pricer(model, provider, work, prices, inputs)
        ratio = traffic.peak_rps / traffic.rps if traffic.rps else 1.0
        low, high = BREAK_EVEN_RANGE
        for step in range(int(math.log(high / low) / math.log(1.01)) + 1):
            rps = low * 1.01 ** step
            at = replace(traffic, rps=rps, peak_rps=rps * ratio)
            if function(at).monthly > fleet(at).monthly:
                return None if step == 0 else rps
    except Unpriced:
        return None
    return None
