"""Which flavor and autoscaler combinations work, as located problems: scaling to zero only where
something wakes the service, KEDA only for Deployments, Knative's reserved ports."""

from __future__ import annotations

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes.flavors import KNATIVE_RESERVED_PORTS, sidecar_ports
from mlgen.targets.kubernetes.network import cidr_problem
from mlgen.targets.kubernetes.settings import KubernetesSettings

TARGET = ("targets", "kubernetes")
SCALE_TO_ZERO = ("set targets.kubernetes.autoscaling: requests with flavor: knative or kserve (Knative holds "
                 "requests while it starts a pod), or autoscaling: keda with a keda.query that counts requests "
                 "in front of the pods; or scaling.min_replicas: 1")


def autoscaling_problems(model: ServiceModel, settings: KubernetesSettings) -> list[Problem]:
    flavor, autoscaling = settings.flavor, settings.autoscaling
    problems = []
    if autoscaling == "keda" and flavor != "deployment":
        problems.append(model.problem(
            (*TARGET, "autoscaling"), f"KEDA scales Deployments; flavor {flavor} brings its own autoscaler",
            hint=f"with flavor: {flavor} use autoscaling: requests (concurrency, scales to zero) or cpu; "
                 "KEDA needs flavor: deployment"))
    elif model.scaling.min_replicas == 0 and not settings.scale_to_zero:
        problems.append(model.problem(("scaling", "min_replicas"), _why_not_zero(flavor, autoscaling), hint=SCALE_TO_ZERO))
    if flavor != "deployment" and settings.ingress.host:
        problems.append(model.problem(
            (*TARGET, "ingress", "host"), f"flavor {flavor} routes requests through its own networking layer: no Ingress is rendered",
            hint="point the host at the service with a Knative DomainMapping (or KServe's ingress domain template)",
            warning=True))
    if settings.keda and not settings.keda.custom_query and not settings.service_monitor:
        problems.append(model.problem(
            (*TARGET, "autoscaling"), "the default KEDA query selects the labels the ServiceMonitor gives the runtime's metrics",
            hint="set targets.kubernetes.service_monitor: true, or keda.query for the labels your Prometheus uses",
            warning=True))
    if flavor != "deployment":
        ports = [model.runtime.port, *(sidecar_ports(model) if settings.kserve and settings.kserve.sidecars else ())]
        taken = sorted(set(ports) & set(KNATIVE_RESERVED_PORTS))
        if taken:
            problems.append(model.problem(
                ("runtime", "port"), f"flavor {flavor} runs Knative's queue-proxy in every pod, which takes port "
                                     f"{taken[0]}" + (" (a transformer sidecar's port)" if taken[0] != model.runtime.port else ""),
                hint=f"choose a runtime.port such that it and the next two avoid {', '.join(map(str, KNATIVE_RESERVED_PORTS))}"))
        if settings.kserve and settings.kserve.sidecars and len(sidecar_ports(model)) < 2:
            problems.append(model.problem(
                ("runtime", "port"), "the KServe transformer's sidecars listen on the two ports after runtime.port",
                hint="choose a runtime.port of 65533 or less"))
    return problems


def grpc_problems(model: ServiceModel, settings: KubernetesSettings) -> list[Problem]:
    """Knative routes one port per container (its queue-proxy fronts only that port; the Service
    refuses a second one), which carries the runtime's HTTP: gRPC on a port of its own cannot reach
    a Knative pod."""
    if model.runtime.grpc_port is None or not settings.on_knative:
        return []
    how = "flavor knative" if settings.flavor == "knative" else "flavor kserve with autoscaling: requests (Serverless mode)"
    return [model.problem(("runtime", "grpc_port"), f"{how} runs on Knative, which routes one port per container: "
                          "the runtime's HTTP port takes it, so gRPC on runtime.grpc_port would not be reachable",
                          hint="use flavor: deployment, or flavor: kserve with autoscaling: cpu (RawDeployment, whose "
                               "Service carries the second port); or remove runtime.grpc_port")]


def admin_port_problems(model: ServiceModel, settings: KubernetesSettings) -> list[Problem]:
    """The admin port is a second container port with the probes on it: Knative allows one port per
    container, and KServe's containers are the operator's to probe."""
    if model.runtime.admin_port is None or settings.flavor == "deployment":
        return []
    return [model.problem(("runtime", "admin_port"), f"flavor {settings.flavor} probes and routes one port per container: "
                          "health and metrics cannot move to runtime.admin_port there",
                          hint="use flavor: deployment, or remove runtime.admin_port")]


def _why_not_zero(flavor: str, autoscaling: str) -> str:
    if autoscaling == "cpu":
        what = {"deployment": "a HorizontalPodAutoscaler", "kserve": "KServe's CPU autoscaling (an HPA)",
                "knative": "Knative's HPA autoscaler class"}[flavor]
        return f"{what} cannot scale to zero replicas"
    if autoscaling == "requests":
        return "a HorizontalPodAutoscaler on the request metric cannot scale to zero replicas"
    return ("the default KEDA query reads the pods' own request rate, which is 0 while no pod runs: "
            "nothing would wake the service")


def network_problems(model: ServiceModel, settings: KubernetesSettings) -> list[Problem]:
    """Egress destinations that are not networks, two certificate issuers, and a public Ingress
    host served over plain HTTP."""
    problems = []
    for index, rule in enumerate(settings.egress):
        why = cidr_problem(rule.cidr)
        if why:
            problems.append(model.problem((*TARGET, "egress", index, "cidr"), f"{rule.cidr} is not a network: {why}",
                                          hint="write the network address with its prefix length, such as 10.20.0.0/16"))
    ingress = model.target("kubernetes")["ingress"]
    if ingress.get("cluster_issuer") and ingress.get("issuer"):
        problems.append(model.problem((*TARGET, "ingress", "issuer"), "ingress has both cluster_issuer and issuer",
                                      hint="cert-manager takes one: keep cluster_issuer (cluster-wide) or issuer (in the namespace)"))
    host = settings.ingress
    if host.host and settings.flavor == "deployment" and host.public and not host.tls_secret:
        problems.append(model.problem(
            (*TARGET, "ingress", "host"), f"the Ingress serves {host.host} over plain HTTP: requests and answers cross "
            "the network readable by anyone on the path", warning=True,
            hint="set ingress.cluster_issuer (or issuer) for a cert-manager certificate, or ingress.tls_secret"))
    return problems
