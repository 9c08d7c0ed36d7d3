"""The model named by `model.uri`, fetched into the cache folder when the service starts.

Streamed (never whole in memory), stopped at `model.max_bytes`, hashed while it arrives, written to
a temporary name and renamed into place only when its sha256 is the one serving.json expects. A
cached copy with that hash is used as it is, so a restart downloads nothing. Each store's SDK is
imported only by a service whose URI needs it (a `path` service imports none of this module).

Credentials come from the platform's identity, never from serving.json: boto3's default chain
(instance profile, Lambda role, IRSA), Google Application Default Credentials (the VM's or the
workload's service account), DefaultAzureCredential (managed identity, workload identity). Each
store's emulator is reached through its SDK's own setting (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST)
or, for Azure Blob, MLGEN_AZURE_BLOB_ENDPOINT (an endpoint that replaces
https://ACCOUNT.blob.core.windows.net, such as Azurite's https://127.0.0.1:10000/ACCOUNT).

Run as a script, it fetches the model of a serving.json into a cache folder ahead of time (what an
offline bundle's builder does on a connected machine): `python fetch.py --config app/serving.json
--cache-dir model-cache` prints the cached file's path. It needs only the standard library and the
store's SDK, not the rest of the runtime's requirements.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("mlgen_runtime")

CHUNK = 1 << 20
ATTEMPTS = 4  # a timeout or an unavailable store is tried again, after 1, 2 and 4 s
TIMEOUT_S = 30.0  # connect and read timeout of each request
_AZURE_HOST = re.compile(r"^([a-z0-9]{3,24})\.blob\.core\.windows\.net$")


class FetchError(Exception):
    """The model could not be fetched. `reason` is one of missing, denied, timeout, unavailable,
    hash, too_large, no_sdk, cache; the message names the URI and never a credential."""

    def __init__(self, reason: str, uri: str, detail: str) -> None:
        super().__init__(f"{uri}: {detail}")
        self.reason = reason
        self.retryable = reason in ("timeout", "unavailable")


def cached_model(uri: str, sha256: str, cache_dir: Path) -> Path:
    """Where the model with this hash lives in the cache (one folder per hash: another version
    is another folder, and a rollback finds its model still there)."""
    name = urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1] or "model"
    return cache_dir / sha256 / unquote(name)


def fetch_model(uri: str, sha256: str, max_bytes: int, cache_dir: Path, *, attempts: int = ATTEMPTS,
                timeout_s: float = TIMEOUT_S, sleep: Callable[[float], None] = time.sleep) -> Path:
    """The cached model's path, fetching it first unless a copy with the right hash is there."""
    target = cached_model(uri, sha256, cache_dir)
    if target.is_file():
        if _file_sha256(target) == sha256:
            logger.info("model %s found in the cache %s", uri, target.parent)
            return target
        logger.warning("the cached copy of %s does not match its sha256: fetching it again", uri)
        target.unlink()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError("cache", uri, f"cannot create the model cache {target.parent} ({exc.strerror})") from None
    for attempt in range(1, attempts + 1):
        try:
            started = time.perf_counter()
            size = _download(uri, sha256, max_bytes, target, timeout_s)
            logger.info("model %s fetched (%d bytes in %.1fs, sha256 verified)", uri, size, time.perf_counter() - started)
            return target
        except FetchError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            delay = 2 ** (attempt - 1)
            logger.warning("fetching %s failed (%s); attempt %d of %d in %ds", uri, exc.reason, attempt + 1, attempts, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _download(uri: str, sha256: str, max_bytes: int, target: Path, timeout_s: float) -> int:
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for chunk in _chunks(uri, timeout_s):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError("too_large", uri, f"the model is larger than model.max_size ({max_bytes} bytes)")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise FetchError("hash", uri, f"sha256 mismatch: fetched {digest.hexdigest()}, the spec expects {sha256}")
        os.replace(partial, target)
        return size
    except OSError as exc:  # the cache folder is not writable, or full: the platform's to fix
        raise FetchError("cache", uri, f"cannot write the model cache {target.parent} ({exc.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(uri: str, timeout_s: float) -> Iterator[bytes]:
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return _s3(uri, parts.netloc, parts.path.lstrip("/"), timeout_s)
    if parts.scheme == "gs":
        return _gcs(uri, parts.netloc, parts.path.lstrip("/"), timeout_s)
    if parts.scheme == "file":
        return _file(uri, Path(unquote(parts.path)))
    account = _AZURE_HOST.match(parts.netloc)
    if account:
        return _azure(uri, account.group(1), parts.path, timeout_s)
    return _https(uri, uri, timeout_s)


def _file(uri: str, path: Path) -> Iterator[bytes]:
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        raise FetchError("missing", uri, "no such file") from None
    except PermissionError:
        raise FetchError("denied", uri, "permission denied") from None
    with stream:
        yield from iter(lambda: stream.read(CHUNK), b"")


def _https(uri: str, url: str, timeout_s: float, headers: dict | None = None) -> Iterator[bytes]:
    import socket
    import ssl
    import urllib.error
    import urllib.request

    # The system's trust store (SSL_CERT_FILE and SSL_CERT_DIR are honoured); never unverified.
    request = urllib.request.Request(url, headers={"user-agent": "mlgen-runtime", **(headers or {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s, context=ssl.create_default_context())
    except urllib.error.HTTPError as exc:
        raise _http_status(uri, exc.code) from None
    except (TimeoutError, socket.timeout):
        raise FetchError("timeout", uri, f"no answer within {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise FetchError("denied", uri, f"the server's certificate is not trusted ({exc.reason.verify_message})") from None
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise FetchError("timeout", uri, f"no answer within {timeout_s:g} s") from None
        raise FetchError("unavailable", uri, f"cannot connect ({exc.reason})") from None
    with response:
        try:
            yield from iter(lambda: response.read(CHUNK), b"")
        except (TimeoutError, socket.timeout):
            raise FetchError("timeout", uri, f"the download stalled for {timeout_s:g} s") from None


def _http_status(uri: str, status: int) -> FetchError:
    if status == 404:
        return FetchError("missing", uri, "no such object (HTTP 404)")
    if status in (401, 403):
        return FetchError("denied", uri, f"access denied (HTTP {status}): the service's identity may not read it")
    if status in (408, 429) or status >= 500:
        return FetchError("unavailable", uri, f"the store answered HTTP {status}")
    return FetchError("unavailable", uri, f"unexpected HTTP {status}")


def _s3(uri: str, bucket: str, key: str, timeout_s: float) -> Iterator[bytes]:
    boto3, botocore = _import("boto3", uri), _import("botocore", uri)
    from botocore.config import Config

    client = boto3.client("s3", config=Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                              retries={"max_attempts": 1}))
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_chunks(CHUNK)
    except botocore.exceptions.NoCredentialsError:
        raise FetchError("denied", uri, "no AWS credentials (boto3's default chain found none: "
                                        "an instance profile, a Lambda role or IRSA provides them)") from None
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error.get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            raise FetchError("missing", uri, f"no such object ({error.get('Code')})") from None
        if error.get("Code") in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            raise FetchError("denied", uri, f"access denied ({error.get('Code')}): the service's identity may not read it") from None
        raise _http_status(uri, status) from None
    except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError):
        raise FetchError("timeout", uri, f"no answer within {timeout_s:g} s") from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError) as exc:
        raise FetchError("unavailable", uri, f"cannot connect ({type(exc).__name__})") from None


def _gcs(uri: str, bucket: str, name: str, timeout_s: float) -> Iterator[bytes]:
    storage = _import("google.cloud.storage", uri)
    from google.api_core import exceptions
    from google.auth.exceptions import DefaultCredentialsError

    try:
        client = storage.Client()
        with client.bucket(bucket).blob(name).open("rb", chunk_size=CHUNK, timeout=timeout_s) as stream:
            yield from iter(lambda: stream.read(CHUNK), b"")
    except DefaultCredentialsError:
        raise FetchError("denied", uri, "no Google credentials (Application Default Credentials found none: "
                                        "the VM's or the workload's service account provides them)") from None
    except exceptions.NotFound:
        raise FetchError("missing", uri, "no such object (404)") from None
    except (exceptions.Forbidden, exceptions.Unauthorized) as exc:
        raise FetchError("denied", uri, f"access denied ({exc.code}): the service's identity may not read it") from None
    except exceptions.GoogleAPICallError as exc:
        raise _http_status(uri, exc.code or 0) from None
    except Exception as exc:  # requests' timeouts and connection errors, whichever transport raised them
        raise _transport_error(uri, exc, timeout_s) from None


def _azure(uri: str, account: str, path: str, timeout_s: float) -> Iterator[bytes]:
    blob = _import("azure.storage.blob", uri)
    from azure.core import exceptions
    from azure.identity import DefaultAzureCredential

    endpoint = os.environ.get("MLGEN_AZURE_BLOB_ENDPOINT") or f"https://{account}.blob.core.windows.net"
    client = blob.BlobClient.from_blob_url(endpoint.rstrip("/") + path, credential=DefaultAzureCredential(),
                                           connection_timeout=timeout_s, read_timeout=timeout_s, retry_total=0)
    try:
        yield from client.download_blob().chunks()
    except exceptions.ResourceNotFoundError:
        raise FetchError("missing", uri, "no such blob (404)") from None
    except exceptions.ClientAuthenticationError as exc:
        status = getattr(exc, "status_code", None)
        detail = f"access denied (HTTP {status})" if status else "no Azure credentials (DefaultAzureCredential found none: a managed identity or workload identity provides them)"
        raise FetchError("denied", uri, f"{detail}: the service's identity may not read it" if status else detail) from None
    except exceptions.HttpResponseError as exc:
        raise _http_status(uri, exc.status_code or 0) from None
    except exceptions.ServiceResponseTimeoutError:
        raise FetchError("timeout", uri, f"no answer within {timeout_s:g} s") from None
    except exceptions.ServiceRequestError as exc:
        raise _transport_error(uri, exc, timeout_s) from None
    finally:
        client.close()


def _transport_error(uri: str, exc: Exception, timeout_s: float) -> FetchError:
    if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower():
        return FetchError("timeout", uri, f"no answer within {timeout_s:g} s")
    return FetchError("unavailable", uri, f"cannot connect ({type(exc).__name__})")


_EXTRAS = {"boto3": "boto3", "botocore": "boto3", "google.cloud.storage": "google-cloud-storage",
           "azure.storage.blob": "azure-storage-blob and azure-identity"}


def _import(module: str, uri: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FetchError("no_sdk", uri, f"the bundle lacks {_EXTRAS[module]} (mlgen adds it to the requirements "
                                             "of a spec whose model.uri needs it: render again)") from None


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="fetch.py", description="Fetch the model of serving.json's model.uri into a cache folder.")
    parser.add_argument("--config", required=True, type=Path, help="path to serving.json")
    parser.add_argument("--cache-dir", required=True, type=Path, help="the cache folder (one folder per sha256 inside)")
    args = parser.parse_args(argv)
    # Its own progress lines; an SDK's chatter only from warnings up.
    logging.basicConfig(level=logging.WARNING, format="fetch.py: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    try:
        model = json.loads(args.config.read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"fetch.py: error: cannot read the model of {args.config} ({exc})", file=sys.stderr)
        return 1
    if not model.get("uri") or not model.get("sha256"):
        print(f"fetch.py: error: {args.config} names no model.uri with its sha256: its model is in the bundle", file=sys.stderr)
        return 1
    try:
        path = fetch_model(model["uri"], model["sha256"], int(model["max_bytes"]), args.cache_dir)
    except FetchError as exc:
        print(f"fetch.py: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    import sys

    # Run as a script, this folder comes first on sys.path: the runtime's other modules (config,
    # errors, ...) must not stand in for a same-named module an SDK imports.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
    sys.exit(main())
