"""What the VMs' own identity reads, and under which names: the model object of `model.uri` (when
it lies in the provider's own store) and the spec's secrets (`secrets` and the keys of
`security.api_keys`), each mapped deterministically to the provider's secret store. deploy.sh
grants read on exactly these; the bootstrap reads the secrets at every boot into systemd
credential files on tmpfs, where the on-prem unit's LoadCredential= picks them up."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import parse_uri

# systemd's own place for credentials on tmpfs (/run): gone at power-off, never on the VM's disk,
# never under the install prefix. One folder per service, root-only.
CREDSTORE = "/run/credstore"
# Each provider's store and what a secret's name may hold there (the spec's pattern is wider).
SECRET_STORES = {
    "aws": ("AWS Secrets Manager", re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}"), "letters, digits and /_+=.@-"),
    "gcp": ("Google Secret Manager", re.compile(r"[A-Za-z0-9_-]{1,255}"), "letters, digits, _ and -"),
    "azure": ("Azure Key Vault", re.compile(r"[A-Za-z0-9-]{1,127}"), "letters, digits and -"),
}
# GCP service account ids: 6 to 30 characters, a lowercase letter first.
GCP_ACCOUNT_MIN, GCP_ACCOUNT_MAX = 6, 30
# IAM reads *, ? and $ in a resource as wildcards and variables; ${*}, ${?} and ${$} are the
# characters themselves, so an object key holding them grants that one object, not a pattern.
IAM_LITERALS = str.maketrans({"*": "${*}", "?": "${?}", "$": "${$}"})


@dataclass(frozen=True)
class VmSecret:
    """One secret reference as a VM receives it."""

    name: str  # the credential's name in the unit (the variable the code reads, or MLGEN_API_KEY_n)
    secret: str  # the secret's name in the provider's store, as the spec writes it
    key: str  # the field taken when the secret's value is a JSON object

    def path(self, service: str) -> str:
        return f"{CREDSTORE}/{service}/{self.name}"


@dataclass(frozen=True)
class ModelObject:
    """model.uri when the VMs' identity can be granted read on it (the provider's own store)."""

    store: str  # s3 | gs | azure
    bucket: str  # the bucket, or the Azure container
    key: str  # the object, or the blob
    account: str  # the Azure storage account

    @property
    def aws_resource(self) -> str:
        """BUCKET/KEY as the tail of an S3 object ARN inside a JSON string (escaped for JSON, with
        IAM's wildcard characters taken literally)."""
        return json.dumps(f"{self.bucket}/{self.key}".translate(IAM_LITERALS))[1:-1]


def vm_secrets(model: ServiceModel) -> tuple[VmSecret, ...]:
    return tuple(VmSecret(s.name, s.secret, s.key) for s in model.secrets)


def model_object(model: ServiceModel, provider: str) -> ModelObject | None:
    """The model object the VMs' identity may read; None for a model in the bundle, behind https
    or file://, or in another cloud's store (a warning says the service needs credentials)."""
    if model.model.uri is None:
        return None
    artifact = parse_uri(model.model.uri)
    if artifact.cloud != provider:
        return None
    return ModelObject(artifact.store, artifact.bucket, artifact.key, artifact.account)


def gcp_service_account(name: str) -> str:
    """The account id of the VMs' service account: NAME-vm, padded to GCP's six characters, and
    past its 30 cut with a hash of the name so two long names never share one."""
    account = f"{name}-vm"
    if len(account) < GCP_ACCOUNT_MIN:
        return f"{name}-mlgen-vm"
    if len(account) > GCP_ACCOUNT_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        return f"{name[:GCP_ACCOUNT_MAX - len(digest) - 1].rstrip('-')}-{digest}"
    return account
