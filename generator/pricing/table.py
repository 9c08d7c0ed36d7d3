"""Prices as data: every number with the page that states it and the day it was read there.

A key names what is priced and where: `aws.lambda.gb_second@us-east-1`. Providers price most
things by region, so a key carries its region; `@*` marks a price that is the same everywhere the
provider sells it. A user keeps their own file (negotiated discounts, another region, a node
price) and passes it with `--prices FILE`; its entries replace or extend the built-in ones.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml

from mlgen.errors import MlgenError, Problem

ANYWHERE = "*"
STALE_AFTER = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Price:
    value: float  # US dollars per `unit`
    unit: str
    source: str  # the page that states the figure, or the user's file
    as_of: str  # ISO date the figure was read there


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]
    # A single-threaded prediction measured here takes `factor` times as long on one vCPU of
    # that family; keys are families (see cpu.py), values overridable like prices.
    cpu_factors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, item: str, region: str = ANYWHERE) -> Price | None:
        return self.prices.get(f"{item}@{region}") or self.prices.get(f"{item}@{ANYWHERE}")

    def need(self, item: str, region: str = ANYWHERE) -> Price:
        price = self.get(item, region)
        if price is None:
            raise Unpriced(f"no price for {item} in {region}")
        return price

    @property
    def as_of(self) -> str:
        """The oldest date in the table: an estimate is only as fresh as its stalest number."""
        return min(price.as_of for price in self.prices.values())

    def stale(self, today: datetime.date) -> str | None:
        oldest = datetime.date.fromisoformat(self.as_of)
        if today - oldest > STALE_AFTER:
            return (f"the price table is from {self.as_of}, more than a year before {today.isoformat()}: "
                    "check the sources and pass fresh figures with --prices FILE")
        return None

    def merged(self, path: Path) -> "PriceTable":
        """This table with the user's file on top. The file is YAML:

            source: our 2026 enterprise agreement   # default for every entry below
            as_of: 2026-10-01
            prices:
              aws.ec2.t3.small@eu-west-1: 0.0201     # a number, or a mapping with value/unit/source/as_of
              kubernetes.node@*: {value: 0.10, unit: USD per node-hour}
            cpu_factors:
              t3: 1.3
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise MlgenError([Problem(f"cannot read the price file: {error}", file=str(path))]) from None
        if not isinstance(data, dict) or not isinstance(data.get("prices", {}), dict):
            raise MlgenError([Problem("a price file is a mapping with `prices:` (key: number)", file=str(path))])
        source, as_of = str(data.get("source", path.name)), str(data.get("as_of", ""))
        prices = dict(self.prices)
        for key, entry in data.get("prices", {}).items():
            entry = entry if isinstance(entry, dict) else {"value": entry}
            known = self.prices.get(key)
            date = str(entry.get("as_of", as_of))
            if "value" not in entry or "@" not in key or not date:
                raise MlgenError([Problem(f"price {key!r} needs a value, a region after '@' (or '@*') and an "
                                          "as_of date (per entry or for the file)", file=str(path))])
            prices[key] = Price(float(entry["value"]), str(entry.get("unit", known.unit if known else "USD")),
                                str(entry.get("source", source)), date)
        factors = {**self.cpu_factors, **{str(k): float(v) for k, v in (data.get("cpu_factors") or {}).items()}}
        return replace(self, prices=MappingProxyType(prices), cpu_factors=MappingProxyType(factors))


class Unpriced(Exception):
    """A part of an estimate whose price the table lacks: the estimate says so instead of guessing."""
