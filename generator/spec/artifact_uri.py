"""`model.uri`: a model kept in object storage, fetched by the service when it starts.

What a URI names (its store, bucket or container, and object), the checks a schema pattern cannot
say (no credential in the URI, a bucket name the store accepts), and whether a target's platform
identity can read it (an `s3://` model on Azure can be read, but only with credentials the
platform does not hand out: say how).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mlgen.errors import Problem

AZURE_BLOB_HOST = re.compile(r"^([a-z0-9]{3,24})\.blob\.core\.windows\.net$")
_BUCKET = {"s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
           "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")}
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")

# The cloud whose identity reads each store, and how a platform elsewhere would get credentials.
STORE_CLOUD = {"s3": "aws", "gs": "gcp", "azure": "azure"}
_FOREIGN_HINT = {
    "s3": "give the service AWS credentials it can find through boto3's default chain (for example an IAM "
          "Roles Anywhere profile or AWS_* variables from a secret), or copy the model to the platform's own storage",
    "gs": "give the service Google Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS pointing at a "
          "workload identity federation file from a secret), or copy the model to the platform's own storage",
    "azure": "give the service credentials DefaultAzureCredential finds (AZURE_CLIENT_ID, AZURE_TENANT_ID and "
             "AZURE_FEDERATED_TOKEN_FILE for workload identity federation, from a secret), or copy the model "
             "to the platform's own storage",
}


@dataclass(frozen=True)
class ArtifactURI:
    """A `model.uri`, taken apart."""

    uri: str
    store: str  # s3 | gs | azure | https | file
    bucket: str  # the bucket, the Azure container, the https host; "" for file
    key: str  # the object inside the bucket (Azure: the blob), the https path, the file path
    account: str = ""  # the Azure storage account

    @property
    def cloud(self) -> str | None:
        """aws, gcp or azure: the cloud whose identity reads this store; None for https and file."""
        return STORE_CLOUD.get(self.store)

    @property
    def filename(self) -> str:
        """The object's last path segment: the cached copy keeps it (and its suffix)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1] or "model"


def parse_uri(uri: str) -> ArtifactURI:
    """The parts of a `model.uri` (which has passed the schema's pattern); ValueError says what is wrong."""
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("the URI carries a user name or password; credentials come from the platform's identity")
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise ValueError("the URI has a query or fragment (a signed URL is a credential); name the object alone")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a file URI names an absolute path on the host: file:///srv/models/model.onnx")
        return ArtifactURI(uri, "file", "", unquote(parts.path))
    host, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme in _BUCKET:
        if not _BUCKET[parts.scheme].match(host):
            raise ValueError(f"{host!r} is not a valid bucket name: lowercase letters, digits, '.' and '-'")
        if not key or key.endswith("/"):
            raise ValueError("the URI names a bucket but no object: s3://BUCKET/KEY")
        return ArtifactURI(uri, parts.scheme, host, key)
    if parts.port is not None and parts.port <= 0:
        raise ValueError("the URI's port is not valid")
    account = AZURE_BLOB_HOST.match(host)
    if account:
        container, _, blob = key.partition("/")
        if not _CONTAINER.match(container) or not blob:
            raise ValueError("an Azure Blob URI is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB")
        return ArtifactURI(uri, "azure", container, blob, account.group(1))
    if not host or not key:
        raise ValueError("an https URI names a host and a file: https://models.example.com/iris/model.onnx")
    return ArtifactURI(uri, "https", host, key)


def uri_problems(data: dict, sources) -> list[Problem]:
    """A model is either carried (`path`) or fetched (`uri`), and a URI names an object readable
    with the platform's identity alone."""
    model = data["model"]
    if "path" in model and "uri" in model:
        return [sources.problem(("model", "uri"), "model has both path and uri",
                                hint="keep path to ship the model in the bundle, or uri to fetch it when the service starts")]
    if "path" not in model and "uri" not in model:
        return [sources.problem(("model",), "model needs path or uri",
                                hint="path: model/model.onnx (shipped in the bundle) or uri: s3://BUCKET/KEY with sha256")]
    if "uri" not in model:
        return []
    if "sha256" not in model:  # the schema says so too, but its fast path does not read dependentRequired
        return [sources.problem(("model", "uri"), "uri needs sha256 beside it", key=True,
                                hint="what is fetched is verified, never trusted: sha256sum the artifact and set model.sha256")]
    try:
        parse_uri(model["uri"])
    except ValueError as exc:
        return [sources.problem(("model", "uri"), str(exc))]
    return []


def access_problems(model, target: str, provider: str | None) -> list[Problem]:
    """Warnings for a model in another cloud's storage than the one `target` runs on: it can be
    read, but only with credentials the platform's identity does not provide."""
    if model.model.uri is None:
        return []
    artifact = parse_uri(model.model.uri)
    if artifact.store == "file" and target in ("kubernetes", "serverless"):
        return [model.problem(("model", "uri"), f"a file:// model is read from the {target} runtime's own file system",
                              hint="the file must be in the image or on a mounted volume; s3://, gs:// or https:// "
                                   "need nothing more", warning=True)]
    if artifact.cloud is None or artifact.cloud == provider:
        return []
    where = f"{target} on {provider}" if provider else target
    return [model.problem(("model", "uri"), f"{where} has no identity that reads {artifact.store} storage: "
                          f"the service needs credentials for {model.model.uri}",
                          hint=_FOREIGN_HINT[artifact.store], warning=True)]
