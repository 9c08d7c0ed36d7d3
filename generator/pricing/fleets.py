"""Monthly bills of what runs all the time: a VM fleet behind a load balancer, a share of a
Kubernetes cluster's nodes, a host of your own.

A fleet runs the replicas the peak needs while traffic flows and its minimum the rest of the
month. One replica serves `sustained vCPUs x target CPU / seconds per request` requests a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlgen.pricing.cpu import SHAPES
from mlgen.pricing.estimate import HOURS_PER_MONTH, Estimate, Traffic
from mlgen.pricing.table import PriceTable, Unpriced

LB = {"aws": "aws.alb", "gcp": "gcp.lb", "azure": "azure.lb"}
ALB_LCU = "https://aws.amazon.com/elasticloadbalancing/pricing/"
# One ALB Load Balancer Capacity Unit, per hour: 25 new connections a second or 1 GB processed
# (EC2 targets), whichever the traffic uses more of.
ALB_NEW_CONNECTIONS_PER_LCU = 25
ALB_GB_PER_LCU_HOUR = 1.0


@dataclass(frozen=True)
class Replicas:
    peak: int
    low: int
    per_replica_rps: float

    def hours(self, traffic: Traffic) -> float:
        return self.peak * traffic.hours + self.low * (HOURS_PER_MONTH - traffic.hours)


def replicas(traffic: Traffic, *, cpus: float, run_s: float, target_cpu_percent: int, minimum: int) -> Replicas:
    per_replica = cpus * target_cpu_percent / 100 / run_s
    return Replicas(max(minimum, math.ceil(round(traffic.peak_rps / per_replica, 9))), minimum, per_replica)


def load_balancer(prices: PriceTable, provider: str, region: str, traffic: Traffic,
                  bytes_per_request: int) -> tuple[tuple[str, float], ...]:
    """The load balancer's hours, and its traffic: AWS capacity units (counting one new connection
    per request, the worst case: clients that keep connections alive use fewer), GB elsewhere."""
    key = LB[provider]
    gb_per_hour = traffic.rps * 3600 * bytes_per_request / 1e9
    hours = ("load balancer hours", HOURS_PER_MONTH * prices.need(f"{key}.hour", region).value)
    if provider == "aws":
        lcu = max(traffic.rps / ALB_NEW_CONNECTIONS_PER_LCU, gb_per_hour / ALB_GB_PER_LCU_HOUR)
        return hours, ("load balancer capacity units", lcu * traffic.hours * prices.need(f"{key}.lcu_hour", region).value)
    return hours, ("load balancer data", gb_per_hour * traffic.hours * prices.need(f"{key}.gb", region).value)


def vm_fleet(prices: PriceTable, provider: str, region: str, traffic: Traffic, *, instance_type: str, run_s: float,
             bytes_per_request: int, target_cpu_percent: int, min_size: int, max_size: int,
             artifact_mb: float | None) -> Estimate:
    shape = SHAPES.get(instance_type)
    if shape is None:
        raise Unpriced(f"mlgen does not know how many vCPUs {instance_type} has")
    service = {"aws": "aws.ec2", "gcp": "gcp.gce", "azure": "azure.vm"}[provider]
    hourly = prices.need(f"{service}.{instance_type}", region).value
    fleet = replicas(traffic, cpus=shape.sustained_vcpus, run_s=run_s * prices.cpu_factors.get(shape.family, 1.0),
                     target_cpu_percent=target_cpu_percent, minimum=min_size)
    parts = [(f"{instance_type} instance-hours", fleet.hours(traffic) * hourly),
             *load_balancer(prices, provider, region, traffic, bytes_per_request)]
    if artifact_mb:
        parts.append(("bundle storage", artifact_mb / 1000 * prices.need(f"{provider}.storage.gb_month", region).value))
    notes = [f"{fleet.peak} x {instance_type} at peak ({fleet.per_replica_rps:.0f} req/s each at "
             f"{target_cpu_percent} % of {shape.sustained_vcpus:g} sustained vCPU), {fleet.low} otherwise"]
    if fleet.peak > max_size:
        notes.append(f"the peak needs {fleet.peak} instances, more than scaling.max_replicas ({max_size})")
    return Estimate(f"cloud/{provider}", tuple(parts), tuple(notes))


@dataclass(frozen=True)
class Node:
    """The price and size of one Kubernetes node, given by the user (`--node-price`)."""

    hourly: float
    cpus: float
    memory_gib: float


def kubernetes(prices: PriceTable, node: Node | None, traffic: Traffic, *, pod_cpus: float, pod_memory_gib: float,
               run_s: float, target_cpu_percent: int, min_replicas: int, lb_provider: str, lb_region: str,
               bytes_per_request: int) -> Estimate:
    """The pods pay for the share of a node their requests reserve (the larger of CPU and memory),
    not whole nodes: a cluster packs other workloads beside them."""
    if node is None:
        return Estimate("kubernetes", unpriced="give the node's price and size: --node-price, --node-cpu, --node-memory")
    pods = replicas(traffic, cpus=pod_cpus, run_s=run_s * prices.cpu_factors.get("node", 1.0),
                    target_cpu_percent=target_cpu_percent, minimum=max(1, min_replicas))
    share = max(pod_cpus / node.cpus, pod_memory_gib / node.memory_gib)
    parts = (("node share", pods.hours(traffic) * share * node.hourly),
             *load_balancer(prices, lb_provider, lb_region, traffic, bytes_per_request))
    return Estimate("kubernetes", parts, (f"pods at peak: {pods.peak}, each {share:.1%} of a node; "
                                          f"the ingress load balancer priced as {lb_provider}'s in {lb_region}",))


@dataclass(frozen=True)
class Host:
    """Hardware the user buys, paid over `months`, and the power it draws."""

    cost: float
    months: int
    watts: float = 0.0
    kwh_price: float = 0.0


def onprem(host: Host | None) -> Estimate:
    if host is None:
        return Estimate("onprem", unpriced="give the hardware's cost: --hardware-cost (and --power-watts, --power-price)")
    parts = (("hardware, amortised", host.cost / host.months),
             ("power", host.watts / 1000 * HOURS_PER_MONTH * host.kwh_price))
    return Estimate("onprem", parts, (f"hardware paid over {host.months} months; space, cooling and people not counted",))
