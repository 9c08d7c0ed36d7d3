"""Where the pods may call and who may reach them beyond what the pipeline itself needs: the
spec's egress destinations (a database a handler reads), and whether an Ingress host is public.
The NetworkPolicies themselves are in templates/kubernetes/base/networkpolicy.yaml.j2."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Sequence

# Names that never resolve on the public internet (RFC 6761, RFC 6762, RFC 8375, and the cluster's
# own): an Ingress there serves a private network, where plain HTTP is the operator's call.
PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".home.arpa", ".test", ".invalid", ".lan",
                    ".svc", ".cluster.local", ".intranet", ".corp", ".private")


@dataclass(frozen=True)
class EgressPort:
    port: int
    protocol: str


@dataclass(frozen=True)
class EgressRule:
    cidr: str
    ports: tuple[EgressPort, ...]


def egress_rules(spec: Sequence[Mapping]) -> tuple[EgressRule, ...]:
    return tuple(EgressRule(rule["cidr"], tuple(EgressPort(p["port"], p["protocol"]) for p in rule["ports"]))
                 for rule in spec)


def cidr_problem(cidr: str) -> str | None:
    """Why a CIDR the schema's pattern let through is not a network, or None."""
    try:
        ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        return str(exc)
    return None


def public_host(host: str) -> bool:
    """A host clients reach over the internet: a dotted name outside the private suffixes, or a
    global IP address."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    return "." in host and not host.endswith(PRIVATE_SUFFIXES)
