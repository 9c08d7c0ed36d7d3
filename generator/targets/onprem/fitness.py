"""What the on-prem target cannot do as the spec asks, located at the spec's lines."""

from __future__ import annotations

import ipaddress

from mlgen.errors import Problem
from mlgen.monitoring import NODE_EXPORTER_PORT
from mlgen.spec import ServiceModel
from mlgen.targets.onprem.settings import host_settings

MAX_USER_LENGTH = 32  # useradd's limit on Linux
SPECIAL_PREFIXES = ("any", "localhost", "link-local", "multicast")


def fit(model: ServiceModel) -> list[Problem]:
    settings = host_settings(model)
    where = ("targets", "onprem")
    problems = []
    if len(settings.user) > MAX_USER_LENGTH:
        problems.append(model.problem(where + ("user",), f"the default service user {settings.user!r} is longer than {MAX_USER_LENGTH} characters",
                                      hint="set targets.onprem.user to a shorter name"))
    for field in ("ip_address_allow", "ip_address_deny"):
        for index, prefix in enumerate(getattr(settings, field)):
            if prefix not in SPECIAL_PREFIXES and not _is_network(prefix):
                problems.append(model.problem(where + (field, index), f"{prefix!r} is not an IP address or CIDR prefix",
                                              hint="write 10.0.0.0/8, 192.168.1.5, fd00::/8, or one of " + ", ".join(SPECIAL_PREFIXES)))
    if settings.ip_address_allow and not settings.ip_address_deny:
        problems.append(model.problem(where + ("ip_address_allow",), "ip_address_allow has no effect without ip_address_deny",
                                      hint="add ip_address_deny: [any] to allow only these networks", warning=True))
    if "any" in settings.ip_address_deny and not {"any", "localhost"} & set(settings.ip_address_allow):
        problems.append(model.problem(where + ("ip_address_deny",), "the service may not even talk to localhost: the installer's readiness check and the proxy are refused",
                                      hint="add localhost to ip_address_allow", warning=True))
    for index, secret in enumerate(model.secrets):
        if secret.key in (".", ".."):
            problems.append(model.problem(("secrets", index, "key"), f"key {secret.key!r} cannot name a credential file"))
    if settings.ports[-1] > 65535:
        problems.append(model.problem(("scaling", "min_replicas"), f"{len(settings.ports)} instances on consecutive ports from {settings.ports[0]} pass 65535"))
    if settings.tls and settings.bind not in ("127.0.0.1", "::1"):
        problems.append(model.problem(where + ("bind",), f"with tls the service should bind 127.0.0.1, not {settings.bind}: clients could bypass the proxy",
                                      hint="remove bind (it defaults to 127.0.0.1 with tls)", warning=True))
    if model.pipeline.split:
        problems.append(model.problem(("pipeline", "topology"), "on one host the stages run collocated in one process",
                                      hint="the kubernetes target runs each stage as its own service", warning=True))
    if settings.mode == "container" and model.scaling.min_replicas > 1:
        problems.append(model.problem(("scaling", "min_replicas"), "mode container runs one container per host",
                                      hint="use mode venv for several instances behind the proxy", warning=True))
    return problems + fetch_problems(model, settings) + rollout_problems(model, settings) + admin_port_problems(model, settings)


def admin_port_problems(model: ServiceModel, settings) -> list[Problem]:
    """runtime.admin_port gives each instance its own health and metrics port, as far from
    runtime.admin_port as the instance is from runtime.port (blue-green's green set 100 above):
    none of them may land on a port something else on this host listens on."""
    if not settings.admin_ports:
        return []
    sets = settings.colors if settings.blue_green else (settings,)
    admin = sorted(port for each in sets for port in each.admin_ports)
    taken = {port: "a public port of the service" for each in sets for port in each.ports}
    if settings.grpc_port:
        taken[settings.grpc_port] = "runtime.grpc_port"
    if settings.proxy:
        taken[settings.tls["port"]] = "the TLS proxy's port"
    if model.observability.metrics:
        taken[NODE_EXPORTER_PORT] = "node_exporter's port, which the rendered Prometheus scrapes"
    clash = next((port for port in admin if port in taken), None)
    what = "one per instance" + (" and color" if settings.blue_green else "")
    if admin[-1] > 65535:
        message = f"health and metrics need ports {admin[0]}-{admin[-1]} ({what}), which pass 65535"
    elif clash is not None:
        message = f"health and metrics need ports {admin[0]}-{admin[-1]} ({what}); {clash} is {taken[clash]}"
    else:
        return []
    return [model.problem(("runtime", "admin_port"), message,
                          hint="pick a runtime.admin_port whose ports stay clear of "
                               + ", ".join(str(port) for port in sorted(taken)))]


def rollout_problems(model: ServiceModel, settings) -> list[Problem]:
    """Blue-green on one host switches the nginx proxy between two sets of instances (venv mode).
    A canary is refused by the planner with the strategies this target does carry out."""
    where = ("rollout", "strategy")
    strategy = model.rollout.strategy
    if strategy != "blue_green":
        return []
    if settings.mode == "container":
        return [model.problem(("targets", "onprem", "mode"), "blue_green on one host runs two sets of instances from their own "
                              "folders; mode container runs one container", hint="use mode venv, or rollout.strategy all_at_once")]
    if not settings.proxy:
        return [model.problem(where, "blue_green on one host switches traffic in the nginx proxy, which only targets.onprem.tls sets up",
                              hint="set targets.onprem.tls (certificate and key on the host), or rollout.strategy all_at_once")]
    if settings.grpc_port:
        return [model.problem(("runtime", "grpc_port"), "blue_green on one host cannot run two versions on one gRPC port",
                              hint="drop runtime.grpc_port, or use rollout.strategy all_at_once")]
    blue, green = (set(color.ports) for color in settings.colors)
    taken = blue | {settings.tls["port"]}
    if max(green) > 65535 or green & taken:
        return [model.problem(("runtime", "port"), f"blue_green runs the new version on ports {min(green)}-{max(green)} "
                              f"(runtime.port + {min(green) - min(blue)}), which "
                              + ("pass 65535" if max(green) > 65535 else "the service already uses"),
                              hint="pick a lower runtime.port, or fewer instances")]
    return []


def fetch_problems(model: ServiceModel, settings) -> list[Problem]:
    """A model fetched from model.uri: the offline bundle carries it only in venv mode, and the
    service fetches it itself only where its IP filter lets it reach the store."""
    if not model.model.fetched:
        return []
    where = ("targets", "onprem")
    if settings.air_gapped and settings.mode == "container":
        return [model.problem(("model", "uri"), "an air-gapped container host cannot fetch model.uri, and its offline "
                              "bundle carries only the image",
                              hint="use mode venv (its offline bundle carries the model), or model.path with the model in the image")]
    if not settings.air_gapped and "any" in settings.ip_address_deny and "any" not in settings.ip_address_allow:
        return [model.problem(where + ("ip_address_deny",), f"the service fetches {model.model.uri} when it starts, but "
                              "IPAddressDeny=any keeps it from the store unless ip_address_allow lists the store's addresses",
                              hint="set air_gapped: true and install the offline bundle, which carries the model", warning=True)]
    return []


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
