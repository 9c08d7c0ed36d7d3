"""How the load balancer each provider's deploy.sh puts in front of the fleet carries the runtime's
gRPC port (runtime.grpc_port), as data with its source: the fitness check, the scripts and
docs/choosing-a-target.md say the same thing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GrpcForwarding:
    provider: str
    balancer: str  # what deploy.sh creates
    forwards: bool  # deploy.sh forwards runtime.grpc_port through it
    how: str  # what a gRPC client gets, or what it would take
    source: str


GRPC = {
    "aws": GrpcForwarding(
        "aws", "Application Load Balancer", False,
        "gRPC reaches targets only through a target group of protocol version GRPC behind an HTTPS listener, "
        "which needs a certificate: the HTTP listener deploy.sh creates cannot carry it",
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html"
        "#target-group-protocol-version"),
    "gcp": GrpcForwarding(
        "gcp", "regional external passthrough Network Load Balancer", True,
        "the forwarding rule passes the gRPC port through as TCP, unterminated: balanced per connection, so one "
        "client's calls stay on one VM; no TLS in front (the VM's port is plain text)",
        "https://cloud.google.com/load-balancing/docs/passthrough-network-load-balancer"),
    "azure": GrpcForwarding(
        "azure", "Azure Load Balancer (Standard, layer 4)", True,
        "a rule of its own passes the gRPC port through as TCP: balanced per connection (a hash of the flow), "
        "so one client's calls stay on one VM; no TLS in front (the VM's port is plain text)",
        "https://learn.microsoft.com/azure/load-balancer/load-balancer-overview"),
}
