"""`mlgen plan`'s cost section: the request, the estimates and the break-even, as text, as JSON,
and as the generated table in docs/choosing-a-target.md."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from mlgen.pricing import costs
from mlgen.pricing.estimate import Estimate, Traffic, Workload
from mlgen.pricing.prices import builtin
from mlgen.spec import ServiceModel


@dataclass(frozen=True)
class CostRequest:
    """What `mlgen plan --rps ...` asks for."""

    traffic: Traffic
    prices: Path | None = None  # the user's price file, on top of the built-in table
    inputs: costs.Inputs = costs.Inputs()
    request_ms: float | None = None  # instead of (or without) a measurement
    today: datetime.date = field(default_factory=datetime.date.today)


@dataclass(frozen=True)
class Costs:
    traffic: Traffic
    workload: Workload
    measured: bool  # False: the time per request was given, not measured
    table_date: str
    warnings: tuple[str, ...]
    estimates: tuple[Estimate, ...]
    break_even: dict  # provider -> requests a second, or None

    def as_json(self) -> dict:
        t, w = self.traffic, self.workload
        return {"price_table_date": self.table_date, "warnings": list(self.warnings),
                "traffic": {"rps": t.rps, "peak_rps": t.peak_rps, "hours_per_day": t.hours_per_day,
                            "requests_per_month": round(t.requests), "free_tier": t.free_tier},
                "request_ms": round(w.request_s * 1000, 3), "request_ms_measured": self.measured,
                "estimates": [e.as_json() for e in self.estimates],
                "break_even_rps": {p: None if r is None else round(r, 2) for p, r in self.break_even.items()}}


def price(model: ServiceModel, request: CostRequest, measured: dict | None) -> Costs | str:
    """The costs, or why there are none (no time per request)."""
    table = builtin() if request.prices is None else builtin().merged(request.prices)
    ok = measured and "error" not in measured
    if request.request_ms is None and not (ok and "request_s" in measured):
        return "costs need the time of one prediction: measure it (drop --no-measure) or give --request-ms"
    request_s = request.request_ms / 1000 if request.request_ms is not None else measured["request_s"]
    workload = Workload(request_s, measured["rss_mb"] if ok else model.resources.memory_mib,
                        measured.get("bytes", 1024) if ok else 1024)
    warnings = tuple(w for w in [table.stale(request.today)] if w)
    estimates = costs.estimates(model, request.traffic, workload, table, request.inputs)
    even = {p: costs.break_even(model, p, request.traffic, workload, table, request.inputs) for p in costs.PROVIDERS}
    return Costs(request.traffic, workload, request.request_ms is None, table.as_of, warnings, tuple(estimates), even)


def render(result: Costs | str) -> list[str]:
    if isinstance(result, str):
        return [f"  costs: {result}"]
    t, w = result.traffic, result.workload
    how = "measured here" if result.measured else "given"
    lines = [f"  costs a month in USD: estimates from list prices of {result.table_date}, not a quote",
             f"    traffic: {t.rps:g} req/s average, {t.peak_rps:g} at peak, {t.hours_per_day:g} h a day = "
             f"{t.requests / 1e6:.2f} M requests; free tiers {'applied' if t.free_tier else 'not applied (--free-tier)'}",
             f"    one prediction: {w.request_s * 1000:.2f} ms {how}, scaled by each platform's CPU share and a "
             "per-family factor (1.0 unless your --prices file says otherwise)"]
    lines += [f"    warning: {warning}" for warning in result.warnings]
    for e in result.estimates:
        if e.unpriced:
            lines.append(f"    {e.option:<18}{'not priced':>12}  {e.unpriced}")
            continue
        parts = ", ".join(f"{what} {usd:.2f}" for what, usd in e.parts)
        lines.append(f"    {e.option:<18}{e.monthly:>12,.2f}  {parts}")
        lines += [f"    {'':<30}  {note}" for note in e.notes]
    for provider, rps in result.break_even.items():
        if rps is not None:
            lines.append(f"    break-even: serverless/{provider} costs less than cloud/{provider} below {rps:.3g} req/s average")
    return lines


def recommendation(result: Costs, fitting: set[str]) -> list[str]:
    """The cheapest of the options that fit."""
    priced = sorted((e for e in result.estimates if e.monthly is not None and e.option in fitting), key=lambda e: e.monthly)
    return [f"{priced[0].option}: the cheapest at this traffic, about {priced[0].monthly:,.0f} USD a month"] if priced else []


DOC_RATES = (1, 10, 100)
DOC_REQUEST_MS = 10.0
DOC_OPTIONS = ("cloud/aws", "cloud/gcp", "cloud/azure", "serverless/aws", "serverless/gcp", "serverless/azure")


def docs_section(examples: list[ServiceModel]) -> str:
    """The generated table in docs/choosing-a-target.md: each example at 1, 10 and 100 requests
    a second, for a stated time per request, so the page does not depend on this machine."""
    table = builtin()
    lines = ["## What each target costs", "",
             f"Monthly USD for the examples at {', '.join(map(str, DOC_RATES))} requests a second, around the clock, "
             f"peak twice the average, {DOC_REQUEST_MS:g} ms a prediction on one core, free tiers not applied; list "
             f"prices of {table.as_of} (on-demand, without taxes). `mlgen plan SPEC --rps N` measures your model "
             "and prices your traffic; Kubernetes and on-prem need your node or hardware price.", "",
             "| example | req/s | " + " | ".join(f"`{o}`" for o in DOC_OPTIONS) + " |",
             "|---|---|" + "---|" * len(DOC_OPTIONS)]
    for model in examples:
        for rps in DOC_RATES:
            work = Workload(DOC_REQUEST_MS / 1000, model.resources.memory_mib, 1024)
            found = {e.option: e for e in costs.estimates(model, Traffic(rps, 2 * rps), work, table)}
            cells = [f"{found[o].monthly:,.2f}" if found[o].monthly is not None else "not priced" for o in DOC_OPTIONS]
            lines.append(f"| {model.name} | {rps} | " + " | ".join(cells) + " |")
    sources = sorted({price.source for price in table.prices.values()})
    return "\n".join(lines + ["", "Prices from: " + ", ".join(sources) + ".", ""])


def docs_section_for_examples(root: Path) -> str:
    from mlgen.spec import load_spec

    return docs_section([load_spec(spec) for spec in sorted(root.glob("examples/*/spec.yaml"))])
