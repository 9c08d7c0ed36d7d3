"""What an estimate is made of: the traffic, one request's cost in compute, and the bill's parts."""

from __future__ import annotations

import math
from dataclasses import dataclass

HOURS_PER_MONTH = 730  # the month all three providers' calculators use (8,760 h / 12)


@dataclass(frozen=True)
class Traffic:
    rps: float  # average requests per second while traffic flows
    peak_rps: float  # what the fleet must serve without queueing
    hours_per_day: float = 24.0
    free_tier: bool = False  # the account's monthly free tier, shared with everything else in it

    @property
    def hours(self) -> float:
        """Hours of traffic a month."""
        return self.hours_per_day * HOURS_PER_MONTH / 24

    @property
    def requests(self) -> float:
        return self.rps * 3600 * self.hours


@dataclass(frozen=True)
class Workload:
    """One prediction, as `mlgen plan` measured it in process on this machine."""

    request_s: float  # median wall time of one prediction after the first
    memory_mb: float  # peak resident memory of the serving process
    bytes_per_request: int  # request + response bodies


@dataclass(frozen=True)
class Estimate:
    option: str  # target/provider, as `mlgen plan` labels it
    parts: tuple[tuple[str, float], ...] = ()  # (what, USD a month)
    notes: tuple[str, ...] = ()
    unpriced: str | None = None  # why there is no figure

    @property
    def monthly(self) -> float | None:
        return None if self.unpriced else sum(usd for _, usd in self.parts)

    def as_json(self) -> dict:
        return {"option": self.option, "monthly_usd": None if self.monthly is None else round(self.monthly, 2),
                "parts": {what: round(usd, 2) for what, usd in self.parts}, "notes": list(self.notes),
                "unpriced": self.unpriced}


def billable(quantity: float, free: float, apply_free: bool) -> float:
    return max(0.0, quantity - free) if apply_free else quantity


def round_up(seconds: float, step_s: float) -> float:
    """Billing granularity: providers round each run up to a step (1 ms, 100 ms)."""
    return math.ceil(round(seconds / step_s, 9)) * step_s
