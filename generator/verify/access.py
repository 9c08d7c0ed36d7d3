"""What a verified bundle needs beyond its files, as its platform would give it: the API keys it
asks callers for (fresh throwaway ones, delivered as the platform delivers secrets: an environment
variable of the credential's name), the header each probe then carries, and for a model.uri model
a cache of verify's own, seeded from a local copy (--model-file) or filled by the service's own
fetch with the credentials of this environment."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlgen import smoke
from mlgen.spec import ServiceModel
from mlgen.verify.environment import NotHere

# What the store SDKs read to find credentials or an endpoint (the service's fetch never gets
# credentials any other way): passed through from verify's own environment.
STORE_ENVIRONMENT = ("AWS_", "GOOGLE_", "CLOUDSDK_", "AZURE_", "STORAGE_EMULATOR_HOST", "MLGEN_AZURE_BLOB_ENDPOINT",
                     "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


class ModelFileMismatch(Exception):
    """--model-file is not the artifact the spec names (its sha256 differs)."""


@dataclass(frozen=True)
class Access:
    env: dict[str, str] = field(default_factory=dict)  # added to every process the bundle runs
    headers: dict[str, str] = field(default_factory=dict)  # sent with every probe
    admin_port: int | None = None  # where the entry process answers health (runtime.admin_port)


def access_for(model: ServiceModel, scratch: Path, model_file: Path | None = None) -> Access:
    env: dict[str, str] = {}
    headers: dict[str, str] = {}
    security = model.security
    if security.auth == "jwt":
        raise NotHere("security.auth is jwt: verify cannot sign a token your issuer would accept "
                      "(verify a copy of the spec with --set security.auth=none)")
    if security.auth == "api_key":
        keys = {key.name: secrets.token_urlsafe(24) for key in security.api_keys}
        env.update(keys)
        headers.update(smoke.credential_headers(security.header, next(iter(keys.values()))))
    if model.model.fetched:
        cache = scratch / "model-cache"
        env["MLGEN_MODEL_CACHE"] = str(cache)
        if model_file is not None:
            _seed(cache, model.model.uri, model.model.sha256, model_file)
        else:
            env.update({name: value for name, value in os.environ.items() if name.startswith(STORE_ENVIRONMENT)})
    return Access(env, headers, model.runtime.admin_port)


def _seed(cache: Path, uri: str, sha256: str, model_file: Path) -> None:
    """The runtime's cache layout (fetch.cached_model): CACHE/SHA256/FILE NAME."""
    digest = hashlib.sha256()
    with open(model_file, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise ModelFileMismatch(f"--model-file {model_file} has sha256 {digest.hexdigest()}, "
                                f"not the spec's model.sha256 {sha256}")
    name = unquote(urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]) or "model"
    target = cache / sha256 / name
    target.parent.mkdir(parents=True)
    shutil.copyfile(model_file, target)
