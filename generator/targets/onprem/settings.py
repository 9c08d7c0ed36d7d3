"""Where and how the service lives on a host: the spec's `targets.onprem` settings with every
derived value (user, ports, paths, devices) worked out once, so templates only print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from generator.spec import ServiceModel

CONFIG_ROOT = "/etc/mlgen"
STATE_ROOT = "/var/lib/mlgen"
UNIT_DIR = "/etc/systemd/system"
QUADLET_DIR = "/etc/containers/systemd"
LOOPBACK = {"127.0.0.1": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::1": "[::1]", "::": "[::1]"}
# The device nodes a CUDA program opens besides one /dev/nvidiaN per GPU.
NVIDIA_CONTROL_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


@dataclass(frozen=True)
class Credential:
    """A secret the service reads from an environment variable, delivered by systemd from a
    root-only file the administrator fills (`LoadCredential=`); its value is never rendered."""

    name: str  # environment variable, also the credential's id inside the unit
    path: str  # the file on the host


@dataclass(frozen=True)
class HostSettings:
    name: str
    version: str
    mode: str  # venv: a virtual environment under the prefix; container: a Podman Quadlet unit
    prefix: str
    home: str  # prefix/name: app/ and venv/ live here
    user: str
    bind: str
    ports: tuple[int, ...]  # one per instance
    python: str  # "3.11"
    platform: str  # wheel platform of the host: x86_64 or aarch64
    air_gapped: bool
    image: str | None
    tls: Mapping | None
    ip_address_allow: tuple[str, ...]
    ip_address_deny: tuple[str, ...]
    gpu: int
    credentials: tuple[Credential, ...]

    @property
    def instances(self) -> bool:
        """Several instances: a template unit `<name>@.service`, one instance per port."""
        return len(self.ports) > 1

    @property
    def unit_file(self) -> str:
        return f"{self.name}@.service" if self.instances else f"{self.name}.service"

    @property
    def units(self) -> tuple[str, ...]:
        """The units the installer enables and starts."""
        if self.instances:
            return tuple(f"{self.name}@{port}.service" for port in self.ports)
        return (f"{self.name}.service",)

    @property
    def config_dir(self) -> str:
        return f"{CONFIG_ROOT}/{self.name}"

    @property
    def env_file(self) -> str:
        return f"{self.config_dir}/environment"

    @property
    def state_dir(self) -> str:
        return f"{STATE_ROOT}/{self.name}"

    @property
    def local_host(self) -> str:
        """How a client on the host itself reaches the bound address (for readiness and the proxy)."""
        return LOOPBACK[self.bind]

    @property
    def proxy(self) -> bool:
        return self.tls is not None

    @property
    def devices(self) -> tuple[str, ...]:
        if not self.gpu:
            return ()
        return NVIDIA_CONTROL_DEVICES + tuple(f"/dev/nvidia{index}" for index in range(self.gpu))


def host_settings(model: ServiceModel, **overrides) -> HostSettings:
    """The host layout for `model` from its `targets.onprem` settings (schema defaults applied).
    `overrides` replace single settings: the cloud VM target installs the same unit with, say,
    `bind="0.0.0.0", tls=None` behind its load balancer."""
    spec = {**model.target("onprem"), **overrides}
    mode, prefix, tls = spec.get("mode", "venv"), spec.get("prefix", "/opt/mlgen"), spec.get("tls")
    # Several instances only for the virtual-environment mode: a template unit on consecutive ports.
    instances = max(1, model.scaling.min_replicas) if mode == "venv" else 1
    port = model.runtime.port
    return HostSettings(
        name=model.name,
        version=model.version,
        mode=mode,
        prefix=prefix,
        home=f"{prefix}/{model.name}",
        user=spec.get("user") or f"mlgen-{model.name}",
        # Behind the TLS proxy the service answers on loopback only, so nothing bypasses TLS.
        bind=spec.get("bind") or ("127.0.0.1" if tls else "0.0.0.0"),
        ports=tuple(range(port, port + instances)),
        python=model.runtime.python,
        platform=spec.get("platform", "x86_64"),
        air_gapped=bool(spec.get("air_gapped", False)),
        image=spec.get("image"),
        tls=tls,
        ip_address_allow=tuple(spec.get("ip_address_allow", ())),
        ip_address_deny=tuple(spec.get("ip_address_deny", ())),
        gpu=model.resources.gpu,
        credentials=tuple(Credential(s.name, f"{CONFIG_ROOT}/{model.name}/credentials/{s.secret}/{s.key}")
                          for s in model.secrets),
    )
