"""Where and how the service lives on a host: the spec's `targets.onprem` settings (schema
defaults already applied) with every derived value (user, ports, paths, URLs, limits, wheel
platforms) worked out once, so templates only print them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from mlgen.bundle import requirements
from mlgen.lock import Locked, Platform, locked
from mlgen.targets.onprem.filters import systemd_word
from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import parse_uri
from mlgen.spec.distributions import STORE_REQUIREMENTS
from mlgen.spec.model import API_KEY_PREFIX

CONFIG_ROOT = "/etc/mlgen"
STATE_ROOT = "/var/lib/mlgen"
CACHE_ROOT = "/var/cache/mlgen"  # systemd's CacheDirectory= root for system services
UNIT_DIR = "/etc/systemd/system"
QUADLET_DIR = "/etc/containers/systemd"
READY_PATH = "/v2/health/ready"
LOOPBACK = {"127.0.0.1": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::1": "[::1]", "::": "[::1]"}
# The device nodes a CUDA program opens besides one /dev/nvidiaN per GPU.
NVIDIA_CONTROL_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
# What uvicorn needs beyond runtime.timeout_s to drain in-flight requests after SIGTERM.
STOP_GRACE_S = 5
# How long install.sh waits for readiness by default; a service that fetches model.uri at its first
# start downloads the model before it is ready (the unit itself is Type=exec: systemd never waits).
READY_TIMEOUT_S = 120
FETCH_READY_TIMEOUT_S = 600
# Wheels the offline bundle accepts: manylinux for glibc 2.17 up to 2.28 (RHEL 8, Debian 10 and
# every newer distribution run them), plus the legacy names older wheels carry.
GLIBC_MINORS = tuple(range(28, 16, -1))
LEGACY_PLATFORMS = {"x86_64": ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"),
                    "aarch64": ("manylinux2014_aarch64",)}
CONTAINER_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# Blue-green on one host: two sets of instances side by side, each with its own app/ and venv/ in
# PREFIX/<name>/<color>/; blue on the spec's ports, green on the same ports plus this offset, so
# both sets run at once while nginx switches from one to the other.
COLORS = ("blue", "green")
GREEN_PORT_OFFSET = 100


@dataclass(frozen=True)
class Credential:
    """A secret the service reads from an environment variable, delivered by systemd from a
    root-only file the administrator fills (`LoadCredential=`); its value is never rendered."""

    name: str  # environment variable, also the credential's id inside the unit
    path: str  # the file on the host
    podman_secret: str  # container mode: the Podman secret install.sh makes from the file


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
    # runtime.grpc_port: every instance listens on it (the runtime sets SO_REUSEPORT, so the kernel
    # spreads connections over them); None: HTTP only.
    grpc_port: int | None
    # runtime.admin_port: health and metrics on a port of their own per instance, as far from
    # runtime.admin_port as the instance's port is from runtime.port (empty: beside inference).
    admin_ports: tuple[int, ...]
    admin_bind: str  # where the admin ports listen: the host itself unless the spec opens them
    python: str  # "3.11"
    platform: str  # wheel platform of the host: x86_64 or aarch64
    air_gapped: bool
    image: str | None
    tls: Mapping | None
    ip_address_allow: tuple[str, ...]
    ip_address_deny: tuple[str, ...]
    gpu: int
    credentials: tuple[Credential, ...]
    memory_mib: int
    cpu_percent: int  # CPUQuota=: 100 per core
    request_deadline_s: int  # a request's time limit plus the grace to drain it (unit stop, proxy)
    locked: Locked  # app/requirements.txt: pinned with hashes when the spec's lock covers this host
    # model.uri: the service fetches the model into its cache (None: the model ships in app/).
    fetched_sha256: str | None
    # What build-offline-bundle.sh installs beside the runtime's fetch.py to download the model
    # once for the offline bundle: the store's SDK (none for https:// and file://).
    fetch_requirements: tuple[str, ...]
    ready_timeout_s: int  # install.sh's default --timeout
    # rollout.strategy blue_green: a release starts the idle color, checks it, then switches nginx.
    blue_green: bool = False
    color: str | None = None  # the one color a unit file is rendered for (None: the service as a whole)

    @property
    def require_hashes(self) -> bool:
        return self.locked.hashed

    unit_dir = UNIT_DIR
    quadlet_dir = QUADLET_DIR
    glibc_minors = GLIBC_MINORS

    @property
    def smoke_key(self) -> Credential | None:
        """The API key the blue-green release check sends with the spec's examples (the first of
        security.api_keys: any valid key will do); None when the service asks for none."""
        return next((c for c in self.credentials if c.name.startswith(API_KEY_PREFIX)), None)

    @property
    def exported_credentials(self) -> tuple[Credential, ...]:
        """The secrets the unit exports to the variables the user's code reads. The runtime reads
        its API keys from $CREDENTIALS_DIRECTORY itself, so they never enter any environment."""
        return tuple(c for c in self.credentials if not c.name.startswith(API_KEY_PREFIX))

    @property
    def instances(self) -> bool:
        """A template unit `<name>@.service`, one instance per port: several instances, or a color
        of a blue-green service (whose unit serves the port its instance names)."""
        return len(self.ports) > 1 or self.color is not None

    @property
    def unit_file(self) -> str:
        if self.color:
            return f"{self.name}-{self.color}@.service"
        return f"{self.name}@.service" if self.instances else f"{self.name}.service"

    @property
    def units(self) -> tuple[str, ...]:
        """The units the installer enables and starts (a blue-green service: both colors')."""
        if self.blue_green and not self.color:
            return tuple(unit for color in self.colors for unit in color.units)
        if self.instances:
            return tuple(f"{self.unit_file.removesuffix('@.service')}@{port}.service" for port in self.ports)
        return (f"{self.name}.service",)

    @property
    def unit_files(self) -> tuple[str, ...]:
        return tuple(color.unit_file for color in self.colors) if self.blue_green and not self.color else (self.unit_file,)

    @property
    def colors(self) -> tuple["HostSettings", ...]:
        """Blue-green: the settings of each color's set of instances, its own home and ports."""
        offsets = {"blue": 0, "green": GREEN_PORT_OFFSET}
        return tuple(replace(self, color=color, home=f"{self.home}/{color}",
                             ports=tuple(port + offsets[color] for port in self.ports),
                             admin_ports=tuple(port + offsets[color] for port in self.admin_ports)) for color in COLORS)

    @property
    def scrape_targets(self) -> str:
        """Blue-green: Prometheus's file_sd list of the live color's instances (install.sh writes it)."""
        return f"{self.home}/scrape-targets.json"

    @property
    def scrape_target_list(self) -> list[dict]:
        """The file_sd content for this color's instances."""
        return [{"targets": list(self.health_addresses), "labels": {"service": self.name, "color": self.color}}]

    @property
    def upstream_include(self) -> str:
        """Blue-green: the file nginx's site includes for its upstream, relative to nginx's
        configuration folder; install.sh points it at the live color's ports."""
        return f"mlgen/{self.name}.upstream.conf"

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
    def model_cache(self) -> str:
        """The service's CacheDirectory=: the runtime keeps each fetched model in <sha256>/ here."""
        return f"{CACHE_ROOT}/{self.name}"

    @property
    def local_host(self) -> str:
        """How a client on the host itself reaches the bound address (for readiness and the proxy)."""
        return LOOPBACK[self.bind]

    @property
    def publish_address(self) -> str:
        """The bound address as Podman's PublishPort= wants it (IPv6 in brackets)."""
        return _bracketed(self.bind)

    @property
    def admin_publish_address(self) -> str:
        return _bracketed(self.admin_bind)

    @property
    def health_ports(self) -> tuple[int, ...]:
        """Where each instance answers health and /metrics: its admin port, else its own port."""
        return self.admin_ports or self.ports

    @property
    def health_host(self) -> str:
        """How a client on the host reaches health and /metrics (the admin ports' address)."""
        return LOOPBACK[self.admin_bind] if self.admin_ports else self.local_host

    @property
    def health_addresses(self) -> tuple[str, ...]:
        """host:port of each instance's health and /metrics, for readiness checks and scrapes."""
        return tuple(f"{self.health_host}:{port}" for port in self.health_ports)

    @property
    def ready_urls(self) -> tuple[str, ...]:
        return tuple(f"http://{address}{READY_PATH}" for address in self.health_addresses)

    @property
    def infer_urls(self) -> tuple[str, ...]:
        return tuple(f"http://{self.local_host}:{port}/v2/models/{self.name}/infer" for port in self.ports)

    @property
    def proxy(self) -> bool:
        return self.tls is not None

    @property
    def proxy_url(self) -> str:
        host = self.tls["server_names"][0] if self.tls["server_names"] else "THIS-HOST"
        return f"https://{host}:{self.tls['port']}/v2/models/{self.name}/infer"

    @property
    def devices(self) -> tuple[str, ...]:
        if not self.gpu:
            return ()
        return NVIDIA_CONTROL_DEVICES + tuple(f"/dev/nvidia{index}" for index in range(self.gpu))

    @property
    def exec_start(self) -> str:
        """The command the unit runs: the runtime from the service's own virtual environment."""
        port = "%i" if self.instances else str(self.ports[0])
        command = [systemd_word(f"{self.home}/venv/bin/python"), "-m", "mlgen_runtime", "serve",
                   "--config", systemd_word(f"{self.home}/app/serving.json"),
                   "--host", systemd_word(self.bind), "--port", port]
        if not self.admin_ports:
            return " ".join(command)
        command += ["--admin-host", systemd_word(self.admin_bind)]
        if not self.instances:
            return " ".join(command + ["--admin-port", str(self.admin_ports[0])])
        # A template unit knows only its instance's port (%i); systemd has no arithmetic, so a
        # shell adds the distance to the admin port and execs the runtime (still the unit's process).
        return ("/bin/sh -c 'exec \"$$@\" --admin-port $$((%i + " + str(self.admin_offset) + "))' mlgen-admin-port "
                + " ".join(command))

    @property
    def admin_offset(self) -> int:
        """How far each instance's admin port is from its public port (may be negative)."""
        return self.admin_ports[0] - self.ports[0]

    @property
    def archive(self) -> str:
        """The offline bundle build-offline-bundle.sh packs."""
        return f"{self.name}-onprem-{self.platform}.tar.gz"

    @property
    def abi(self) -> str:
        """The CPython ABI tag of the host's Python, for the offline wheels: cp311."""
        return "cp" + self.python.replace(".", "")

    @property
    def legacy_platforms(self) -> tuple[str, ...]:
        return LEGACY_PLATFORMS[self.platform]

    @property
    def container_arch(self) -> str:
        return CONTAINER_ARCH[self.platform]


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def host_platform(model: ServiceModel, label: str = "onprem", arch: str | None = None) -> Platform:
    """The host's Python environment as `mlgen lock` resolves it: runtime.python on manylinux
    for the same glibc range the offline bundle accepts."""
    arch = arch or model.target("onprem")["platform"]
    return Platform(label, model.runtime.python, f"{arch}-manylinux_2_{max(GLIBC_MINORS)}", tuple(requirements(model)))


def host_settings(model: ServiceModel, platform: Platform | None = None, **overrides) -> HostSettings:
    """The host layout for `model` from its `targets.onprem` settings (schema defaults applied).
    `overrides` replace single settings: the cloud VM target installs the same unit with, say,
    `bind="0.0.0.0", tls=None` behind its load balancer."""
    spec = {**model.target("onprem"), **overrides}
    mode, prefix, tls = spec["mode"], spec["prefix"], spec.get("tls")
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
        grpc_port=model.runtime.grpc_port,
        admin_ports=tuple(model.runtime.admin_port + index for index in range(instances)) if model.runtime.admin_port else (),
        admin_bind=spec["admin_bind"],
        python=model.runtime.python,
        platform=spec["platform"],
        air_gapped=spec["air_gapped"],
        image=spec.get("image"),
        tls=tls,
        ip_address_allow=tuple(spec["ip_address_allow"]),
        ip_address_deny=tuple(spec["ip_address_deny"]),
        gpu=model.resources.gpu,
        credentials=tuple(Credential(s.name, f"{CONFIG_ROOT}/{model.name}/credentials/{s.secret}/{s.key}",
                                     f"{model.name}-{s.name.lower()}")
                          for s in model.secrets),
        memory_mib=model.resources.memory_mib,
        cpu_percent=max(1, round(model.resources.millicores / 10)),
        request_deadline_s=model.runtime.timeout_s + STOP_GRACE_S,
        locked=locked(model, platform or host_platform(model)),
        fetched_sha256=model.model.sha256 if model.model.fetched else None,
        fetch_requirements=STORE_REQUIREMENTS.get(parse_uri(model.model.uri).store, ()) if model.model.fetched else (),
        ready_timeout_s=FETCH_READY_TIMEOUT_S if model.model.fetched else READY_TIMEOUT_S,
        # Only this target's own bundle releases blue-green (the cloud target installs it with
        # blue_green=False behind its own balancer); without the proxy fitness refuses it.
        blue_green=spec.get("blue_green", model.rollout.strategy == "blue_green") and mode == "venv" and tls is not None,
    )
