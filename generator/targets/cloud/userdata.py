"""The user data: cloud-init that installs the on-prem target's service (its own install.sh,
hardened unit, env file and app/) on a fresh VM. The host files travel as one deterministic
bundle.tar.gz: inside the user data when it fits the provider's limit, otherwise downloaded from
`artifact_url` and checked against the sha256 the user data carries."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import tarfile

import yaml

from mlgen.errors import Problem, RenderError
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.cloud.identity import vm_secrets
from mlgen.targets.cloud.settings import ARCHIVE, CloudSettings
from mlgen.lock import Platform
from mlgen.targets.onprem import HostSettings, host_files, host_platform, host_settings

USER_DATA = "cloud-init.yaml"
# What a VM needs from the host bundle: the air-gap wheelhouse builder, the host guide and the
# uninstaller stay home (a fleet's VMs are replaced, never uninstalled; and Azure's 64 KB of
# base64 custom data leaves no room for what a VM never runs).
HOST_ONLY = ("build-offline-bundle.sh", "INSTALL.md", "uninstall.sh")


@dataclasses.dataclass(frozen=True)
class UserDataLimit:
    provider: str
    limit: int
    what: str  # what the limit counts
    source: str  # where the provider documents it

    def measure(self, user_data: bytes) -> int:
        return len(base64.b64encode(user_data)) if self.provider == "azure" else len(user_data)


LIMITS = {
    "aws": UserDataLimit("aws", 16 * 1024, "16 KB of raw user data (before base64)",
                         "EC2 User Guide, 'Run commands when you launch an EC2 instance with user data input'"),
    "gcp": UserDataLimit("gcp", 256 * 1024, "256 KB per metadata value",
                         "Compute Engine docs, 'About VM metadata', metadata limits"),
    "azure": UserDataLimit("azure", 64 * 1024, "64 KB of base64-encoded custom data",
                           "Azure docs, 'Custom data and cloud-init on Azure Virtual Machines'"),
}


def vm_platform(model: ServiceModel) -> Platform:
    """The VMs' Python environment: runtime.python on x86_64 (every default image is amd64)."""
    return host_platform(model, "cloud", "x86_64")


def vm_host(model: ServiceModel) -> HostSettings:
    """The on-prem host layout as a VM behind a load balancer runs it: one instance on the
    service port, bound to every interface (the load balancer's health checks come from outside),
    no TLS proxy (the load balancer fronts it), packages from the index (the VM has internet), and
    each secret's credential file on tmpfs, where the bootstrap writes what it read with the VM's
    identity (identity.py). With runtime.admin_port, health and /metrics listen there on every
    interface too: the balancer's health checks come from outside, and the firewall admits only them."""
    host = host_settings(model, vm_platform(model), mode="venv", bind="0.0.0.0", tls=None, air_gapped=False,
                         ip_address_allow=[], ip_address_deny=[], admin_bind="0.0.0.0")
    credentials = tuple(dataclasses.replace(credential, path=secret.path(model.name))
                        for credential, secret in zip(host.credentials, vm_secrets(model), strict=True))
    admin = model.runtime.admin_port
    return dataclasses.replace(host, ports=(model.runtime.port,), admin_ports=(admin,) if admin else (), credentials=credentials)


def bundle_archive(files: list[RenderedFile]) -> bytes:
    """A byte-for-byte reproducible tar.gz: sorted, owner root, mtime 0, gzip without a timestamp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rendered in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(rendered.path)
            info.size, info.mode, info.mtime = len(rendered.content), rendered.mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(rendered.content))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def user_data_files(model: ServiceModel, settings: CloudSettings, renderer: Renderer) -> tuple[list[RenderedFile], CloudSettings]:
    """cloud-init.yaml, and bundle.tar.gz when the VMs download it; and the settings the scripts
    render with: a bundle too large for GCP's or Azure's user data goes to the fleet's own private
    bucket instead, as on AWS."""
    host = vm_host(model)
    archive = bundle_archive([f for f in host_files(model, renderer, host) if f.path not in HOST_ONLY])
    user_data, bootstrap = _user_data(model, settings, renderer, archive)
    if settings.inline and LIMITS[settings.provider].measure(user_data.encode()) > LIMITS[settings.provider].limit:
        settings = dataclasses.replace(settings, owned_bucket=True)
        user_data, bootstrap = _user_data(model, settings, renderer, archive)
    _check_round_trip(user_data, bootstrap)
    check_size(model, settings, user_data.encode())
    files = [RenderedFile.text(USER_DATA, user_data)]
    if not settings.inline:
        files.append(RenderedFile(ARCHIVE, archive, generated=False))
    return files, settings


def _user_data(model: ServiceModel, settings: CloudSettings, renderer: Renderer, archive: bytes) -> tuple[str, str]:
    context = {"model": model, "settings": settings}
    # The archive's checksum and the script are rendered values, not settings: they go beside them.
    bootstrap = renderer.render("cloud/bootstrap.sh.j2", **context, archive_sha256=hashlib.sha256(archive).hexdigest())
    user_data = renderer.render("cloud/cloud-init.yaml.j2", **context, bootstrap=bootstrap,
                                archive_b64=base64.b64encode(archive).decode() if settings.inline else None)
    return user_data, bootstrap


def check_size(model: ServiceModel, cloud: CloudSettings, user_data: bytes) -> None:
    limit = LIMITS[cloud.provider]
    size = limit.measure(user_data)
    if size <= limit.limit:
        return
    where = ("targets", "cloud", "artifact_url") if cloud.artifact_url else ("targets", "cloud")
    hint = ("set targets.cloud.artifact_url (where the VMs download bundle.tar.gz) and artifact_upload "
            "(where deploy.sh puts it first), so the user data only carries its URL and sha256"
            if cloud.inline else "the user data is over the limit even without the bundle: shorten the spec's env")
    unit = "bytes of base64" if cloud.provider == "azure" else "bytes"
    raise RenderError(model.problem(where, f"the {cloud.provider} user data is {size} {unit}, over the provider's limit "
                                           f"of {limit.what} ({limit.limit} bytes; {limit.source})", hint=hint))


def _check_round_trip(user_data: str, bootstrap: str) -> None:
    """The bootstrap script sits in a YAML literal block: make sure cloud-init reads back the
    exact script (a stray line break character in a value would change it)."""
    parsed = yaml.safe_load(user_data)
    written = {entry["path"]: entry.get("content") for entry in parsed["write_files"]}
    if not any(content == bootstrap for content in written.values()):
        raise RenderError(Problem("cloud-init.yaml does not carry the bootstrap script unchanged",
                                  "cloud/cloud-init.yaml", hint="a template bug: please report it with the spec"))
