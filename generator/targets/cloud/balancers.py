"""The edge of a cloud fleet: the load balancer each provider's deploy.sh puts in front of the VMs,
who may reach it (targets.cloud.allowed_cidrs), whether it terminates TLS with the spec's
certificate, and how it carries the runtime's gRPC port. Data with sources, so the fitness check,
the scripts and the docs say the same thing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgen.errors import Problem
from mlgen.spec import ServiceModel


@dataclass(frozen=True)
class GrpcForwarding:
    provider: str
    balancer: str  # what deploy.sh creates
    forwards: bool  # deploy.sh forwards runtime.grpc_port through it
    how: str  # what a gRPC client gets, or what it would take
    source: str


GRPC = {
    "aws": GrpcForwarding(
        "aws", "Application Load Balancer", True,
        "with targets.cloud.certificate, an HTTPS listener on the gRPC port (the same certificate and TLS policy) "
        "forwards to a target group of protocol version GRPC: TLS from the client, balanced per call, HTTP/2 to the "
        "VM's plain gRPC port; without a certificate it is refused (an ALB carries gRPC over HTTPS only)",
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

HTTPS_PORT = 443
# TLS 1.3 and 1.2 with forward-secret AEAD suites only (no CBC, no TLS 1.0/1.1):
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html
AWS_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Google's SSL policy profile of the same strength: TLS 1.2 and up, ECDHE with AEAD suites
# (https://cloud.google.com/load-balancing/docs/ssl-policies-concepts).
GCP_TLS_PROFILE = "MODERN"
GCP_MIN_TLS = "1.2"
# Where the passthrough balancer's health checks come from (it keeps the client's address, so the
# VMs see these and the clients): https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges
GCP_PROBE_RANGES = ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22")
# Where the global external Application Load Balancer's proxies and health checks come from: with
# a certificate the VMs see only these, and the clients are filtered at the edge by Cloud Armor.
GCP_PROXY_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
# A Cloud Armor rule matches at most 10 source ranges (https://cloud.google.com/armor/quotas).
ARMOR_RANGES_PER_RULE = 10
ARMOR_FIRST_PRIORITY = 1000
EVERYONE = frozenset({"0.0.0.0/0", "::/0"})

# gRPC target groups' health check: grpc.health.v1 answered with status OK (0), which the runtime
# does while its gRPC server runs; readiness stays with the HTTP target group's check, whose
# failure takes the instance out of both (the auto-scaling group's ELB health check).
AWS_GRPC_HEALTH_PATH = "/grpc.health.v1.Health/Check"
AWS_GRPC_MATCHER = "GrpcCode=0"
AWS_CERTIFICATE = re.compile(r"arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):[0-9]{12}:certificate/[A-Za-z0-9-]+")
# A Key Vault secret identifier: the certificate's secret, versionless (the gateway follows its
# renewals, polling every four hours) or one version (32 hex digits).
AZURE_CERTIFICATE = re.compile(r"https://(?P<vault>[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9])\.vault\.azure\.net/secrets/"
                               r"(?P<secret>[A-Za-z0-9-]{1,127})(/[0-9a-f]{32})?")
# Application Gateway v2's strictest predefined policy: TLS 1.2 and 1.3, ECDHE with AEAD suites only
# (https://learn.microsoft.com/azure/application-gateway/application-gateway-ssl-policy-overview).
AZURE_TLS_POLICY = "AppGwSslPolicy20220101S"
AZURE_GATEWAY_SKU = "Standard_v2"
# The gateway's instances autoscale between these (v2: 0 to 125; one keeps it answering while idle).
AZURE_GATEWAY_CAPACITY = (1, 10)
# The fleet's network when an Application Gateway fronts it: the VMs' subnet and the gateway's own
# (v2 wants a dedicated subnet, /24 recommended: one address per instance).
AZURE_VNET = "10.0.0.0/16"
AZURE_VM_SUBNET = "10.0.0.0/24"
AZURE_GATEWAY_SUBNET = "10.0.1.0/24"
# What Application Gateway v2's subnet must let in besides the clients: Azure's infrastructure on
# 65200-65535 from the GatewayManager service tag, and Azure's load balancer probes
# (https://learn.microsoft.com/azure/application-gateway/configuration-infrastructure#network-security-groups).
AZURE_GATEWAY_MANAGER_PORTS = "65200-65535"
GCP_CERTIFICATE = re.compile(r"(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/sslCertificates/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Edge:
    """The listeners of one fleet's load balancer and who may reach them."""

    provider: str
    name: str
    allowed_cidrs: tuple[str, ...]  # empty only when the spec leaves them out (a fit error)
    http_port: int  # targets.cloud.lb_port: the HTTP listener (a redirect to HTTPS with a certificate)
    service_ports: tuple[int, ...]  # what each VM serves: HTTP, then gRPC
    certificate: str | None
    admin_port: int | None  # runtime.admin_port: health checks only, never the clients

    https_port = HTTPS_PORT
    aws_tls_policy = AWS_TLS_POLICY
    gcp_tls_profile = GCP_TLS_PROFILE
    gcp_min_tls = GCP_MIN_TLS
    azure_tls_policy = AZURE_TLS_POLICY
    aws_grpc_health_path = AWS_GRPC_HEALTH_PATH
    aws_grpc_matcher = AWS_GRPC_MATCHER
    azure_gateway_sku = AZURE_GATEWAY_SKU
    azure_gateway_capacity = AZURE_GATEWAY_CAPACITY
    azure_vnet = AZURE_VNET
    azure_vm_subnet = AZURE_VM_SUBNET
    azure_gateway_subnet = AZURE_GATEWAY_SUBNET
    azure_gateway_manager_ports = AZURE_GATEWAY_MANAGER_PORTS

    @property
    def https(self) -> bool:
        """The balancer terminates TLS with the spec's certificate and redirects HTTP to it."""
        return self.certificate is not None

    @property
    def aws_grpc(self) -> bool:
        """AWS with a certificate and runtime.grpc_port: an HTTPS listener on the gRPC port forwards
        to a gRPC target group."""
        return self.provider == "aws" and self.https and len(self.service_ports) > 1

    @property
    def azure_gateway(self) -> bool:
        """Azure with a certificate: an Application Gateway v2 terminates TLS in front of the scale
        set instead of the layer-4 load balancer."""
        return self.https and self.provider == "azure"

    @property
    def azure_certificate(self) -> tuple[str, str]:
        """The vault and the secret of the certificate's Key Vault secret id (the gateway's identity
        may read that secret only)."""
        found = AZURE_CERTIFICATE.fullmatch(self.certificate or "")
        return (found["vault"], found["secret"]) if found else ("", "")

    @property
    def public(self) -> bool:
        return bool(EVERYONE & set(self.allowed_cidrs))

    @property
    def plain_port(self) -> int:
        """Where clients speak plain HTTP without a certificate: GCP's passthrough balancer serves
        the VMs' own port."""
        return self.service_ports[0] if self.provider == "gcp" else self.http_port

    @property
    def listener_ports(self) -> tuple[int, ...]:
        if self.aws_grpc:
            return (self.http_port, HTTPS_PORT, self.service_ports[1])
        return (self.http_port, HTTPS_PORT) if self.https else (self.http_port,)

    @property
    def aws_ingress(self) -> tuple[str, ...]:
        """The load balancer's security group rules, exactly: `tcp PORT PORT CIDR`, as
        deploy.sh compares them with what the group has (others are revoked)."""
        return tuple(f"tcp {port} {port} {cidr}" for port in self.listener_ports for cidr in self.allowed_cidrs)

    @property
    def aws_redirect(self) -> list[dict]:
        """The HTTP listener's answer with a certificate: 301 to the same URL over HTTPS."""
        return [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": str(HTTPS_PORT), "Host": "#{host}",
                                                         "Path": "/#{path}", "Query": "#{query}", "StatusCode": "HTTP_301"}}]

    @property
    def gcp_firewall_sources(self) -> str:
        """Who reaches the VMs' service ports: the clients and Google's probes through the
        passthrough balancer; only Google's proxies behind the HTTPS one."""
        return ",".join(GCP_PROXY_RANGES if self.https else (*self.allowed_cidrs, *GCP_PROBE_RANGES))

    @property
    def gcp_firewall_rules(self) -> str:
        return ",".join(f"tcp:{port}" for port in (self.service_ports[:1] if self.https else self.service_ports))

    @property
    def gcp_health_sources(self) -> str:
        """Where Google's health checks come from, for the admin port's own firewall rule."""
        return ",".join(GCP_PROXY_RANGES if self.https else GCP_PROBE_RANGES)

    @property
    def gcp_armor_rules(self) -> tuple[tuple[int, str], ...]:
        """Cloud Armor allow rules (priority, comma-separated ranges) in front of the HTTPS
        balancer; its default rule denies everyone else."""
        cidrs = self.allowed_cidrs
        return tuple((ARMOR_FIRST_PRIORITY + index, ",".join(cidrs[start:start + ARMOR_RANGES_PER_RULE]))
                     for index, start in enumerate(range(0, len(cidrs), ARMOR_RANGES_PER_RULE)))

    @property
    def gcp_redirect_map(self) -> dict:
        """The URL map of the HTTP forwarding rule: every request 301 to HTTPS."""
        return {"name": f"{self.name}-lb-http", "defaultUrlRedirect": {"httpsRedirect": True,
                                                                      "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}}


def edge(model: ServiceModel) -> Edge:
    spec = model.target("cloud")
    return Edge(provider=spec["provider"], name=model.name, allowed_cidrs=tuple(spec.get("allowed_cidrs") or ()),
                http_port=spec["lb_port"], certificate=spec.get("certificate"), admin_port=model.runtime.admin_port,
                service_ports=(model.runtime.port,) if model.runtime.grpc_port is None else
                (model.runtime.port, model.runtime.grpc_port))


CERTIFICATE_HINTS = {
    "aws": "set targets.cloud.certificate to the ARN of an ACM certificate in the fleet's region "
           "(arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
    "gcp": "set targets.cloud.certificate to a Google-managed or self-managed SSL certificate "
           "(gcloud compute ssl-certificates create NAME --domains DOMAIN --global)",
    "azure": "set targets.cloud.certificate to the Key Vault secret id of the certificate "
             "(https://VAULT.vault.azure.net/secrets/NAME, from az keyvault certificate show --query sid): "
             "an Application Gateway then terminates TLS",
}


def edge_problems(model: ServiceModel, region: str | None) -> list[Problem]:
    """Who may reach the balancer must be written down; a certificate must be one the provider's
    balancer can use; without one, the listener is plain HTTP on the internet (a warning)."""
    spec, where, problems = model.target("cloud"), ("targets", "cloud"), []
    fleet = edge(model)
    if "allowed_cidrs" not in spec:
        problems.append(model.problem(where, "allowed_cidrs is required: the load balancer is internet-facing, so the spec "
                                             "says which client networks may reach it",
                                      hint='allowed_cidrs: ["10.0.0.0/8"] for a private network, or allowed_cidrs: '
                                           '["0.0.0.0/0"] for a deliberately public service'))
    if not fleet.https:
        problems.append(model.problem(where, f"the {fleet.provider} load balancer listens on plain HTTP (port "
                                             f"{fleet.plain_port}): requests and answers, API keys and tokens included, "
                                             "cross the internet in clear text",
                                      hint=CERTIFICATE_HINTS[fleet.provider], warning=True))
        return problems
    at = where + ("certificate",)
    if fleet.provider == "azure":
        if not AZURE_CERTIFICATE.fullmatch(fleet.certificate):
            problems.append(model.problem(at, f"{fleet.certificate} is not a Key Vault secret id",
                                          hint=CERTIFICATE_HINTS["azure"]))
    elif fleet.provider == "aws":
        arn = AWS_CERTIFICATE.fullmatch(fleet.certificate)
        if not arn:
            problems.append(model.problem(at, f"{fleet.certificate} is not an ACM certificate ARN",
                                          hint=CERTIFICATE_HINTS["aws"]))
        elif region and arn["region"] != region:
            problems.append(model.problem(at, f"the certificate is in {arn['region']} and the fleet in {region}: "
                                              "a load balancer uses ACM certificates of its own region only",
                                          hint=f"request or import the certificate in {region}"))
    elif not GCP_CERTIFICATE.fullmatch(fleet.certificate):
        problems.append(model.problem(at, f"{fleet.certificate} is not a GCP SSL certificate name",
                                      hint=CERTIFICATE_HINTS["gcp"]))
    if fleet.http_port == HTTPS_PORT:
        problems.append(model.problem(where + ("lb_port",), f"port {HTTPS_PORT} is the HTTPS listener's; lb_port is "
                                                            "the HTTP listener that redirects to it",
                                      hint="use lb_port 80"))
    if fleet.provider in ("gcp", "azure") and model.runtime.grpc_port is not None:
        balancer = {"gcp": "GCP's external Application Load Balancer", "azure": "Azure's Application Gateway"}[fleet.provider]
        problems.append(model.problem(("runtime", "grpc_port"), f"with a certificate {balancer} carries HTTP only, not "
                                                                "the gRPC port",
                                      hint="remove runtime.grpc_port, or targets.cloud.certificate for the layer-4 "
                                           "balancer (no TLS in front), or deploy with provider aws (gRPC over its HTTPS listener)"))
    return problems
