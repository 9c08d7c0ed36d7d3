"""Object stores on 127.0.0.1 for the model-artifact tests, each the real server or emulator its SDK
talks to: moto's S3 server (boto3), gcp-storage-emulator (google-cloud-storage), Azurite (Azure
Blob, HTTPS with a throwaway CA and OAuth tokens from a stand-in managed identity endpoint) and a
plain HTTPS server with a throwaway CA. Each is started by the test and stopped by its pid; `env`
is what the runtime needs to reach it (an endpoint, never a credential it would have on a platform,
except moto's dummy keys)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from helpers import free_port, require_tool, send_json, stop_process

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, in Azure's documentation): the test's own uploads use it.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _wait_port(port: int, process, log: Path, deadline_s: float = 30) -> None:
    import socket

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"store exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"store not listening on {port}:\n{log.read_text(errors='replace')}")


class Store:
    """One running store: `put(name, data)` uploads an object, `uri(name)` is what a spec names."""

    scheme = ""
    env: dict

    def stop(self) -> None:
        stop_process(self.process)


class S3Store(Store):
    scheme = "s3"

    def __init__(self, folder: Path) -> None:
        boto3 = pytest.importorskip("boto3")
        moto = require_tool("moto_server")
        self.port, log = free_port(), folder / "moto.log"
        self.process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log.open("wb"),
                                        stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, log)
        self.env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        self.client = boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
        self.client.create_bucket(Bucket="models")

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket="models", Key=name, Body=data)

    def uri(self, name: str) -> str:
        return f"s3://models/{name}"


class GCSStore(Store):
    scheme = "gs"

    def __init__(self, folder: Path) -> None:
        storage = pytest.importorskip("google.cloud.storage")
        emulator = require_tool("gcp-storage-emulator")
        self.port, log = free_port(), folder / "gcs.log"
        self.process = subprocess.Popen([emulator, "start", "--host", "127.0.0.1", "--port", str(self.port),
                                         "--in-memory", "--default-bucket", "models"],
                                        stdout=log.open("wb"), stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, log)
        self.env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}", "GOOGLE_CLOUD_PROJECT": "test"}
        os.environ.update(self.env)
        try:
            from google.auth.credentials import AnonymousCredentials

            self.bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket("models")
        finally:
            for key in self.env:
                os.environ.pop(key, None)

    def put(self, name: str, data: bytes) -> None:
        self.bucket.blob(name).upload_from_string(data)

    def uri(self, name: str) -> str:
        return f"gs://models/{name}"


class HTTPSStore(Store):
    """A file server over HTTPS (a throwaway CA the runtime trusts through SSL_CERT_FILE) that
    counts requests and answers 403 for names under denied/."""

    scheme = "https"

    def __init__(self, folder: Path) -> None:
        ca = trustme.CA()
        ca_file = folder / "store-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.objects: dict[str, bytes] = {}
        self.requests = 0
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                store.requests += 1
                name = self.path.lstrip("/")
                if name.startswith("denied/"):
                    return self.send_error(403)
                if name not in store.objects:
                    return self.send_error(404)
                self.send_response(200)
                self.send_header("content-length", str(len(store.objects[name])))
                self.end_headers()
                self.wfile.write(store.objects[name])

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.env = {"SSL_CERT_FILE": str(ca_file)}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, name: str, data: bytes) -> None:
        self.objects[name] = data

    def uri(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AzureStore(Store):
    """Azurite over HTTPS with OAuth, and a stand-in for App Service's managed identity endpoint
    (IDENTITY_ENDPOINT/IDENTITY_HEADER) so DefaultAzureCredential really fetches a token. Names
    under denied/ get a token for another audience, which Azurite refuses."""

    scheme = "azure"

    def __init__(self, folder: Path) -> None:
        blob = pytest.importorskip("azure.storage.blob")
        pytest.importorskip("azure.identity")
        azurite = require_tool("azurite-blob")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        (folder / "azurite").mkdir(exist_ok=True)
        ca_file, cert_file, key_file = folder / "azurite-ca.pem", folder / "azurite-cert.pem", folder / "azurite-key.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        self.port, log = free_port(), folder / "azurite.log"
        self.process = subprocess.Popen(
            [azurite, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(folder / "azurite"),
             "--cert", str(cert_file), "--key", str(key_file), "--oauth", "basic", "--skipApiVersionCheck",
             "--silent"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, log)
        self.identity = _IdentityEndpoint()
        endpoint = f"https://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        self.env = {"MLGEN_AZURE_BLOB_ENDPOINT": endpoint, "IDENTITY_ENDPOINT": self.identity.url,
                    "IDENTITY_HEADER": "stand-in", "REQUESTS_CA_BUNDLE": str(ca_file), "SSL_CERT_FILE": str(ca_file),
                    "AZURE_CLIENT_ID": ""}
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca_file)
        try:
            service = blob.BlobServiceClient(endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
            self.container = service.create_container("models")
        finally:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        self.ca_file = ca_file

    def put(self, name: str, data: bytes) -> None:
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.ca_file)
        try:
            self.container.upload_blob(name, data, overwrite=True)
        finally:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)

    def uri(self, name: str) -> str:
        return f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/models/{name}"

    def stop(self) -> None:
        stop_process(self.process)
        self.identity.stop()


class _IdentityEndpoint:
    """App Service's managed identity protocol on 127.0.0.1: a token for https://storage.azure.com,
    shaped as Entra ID issues it (Azurite's basic OAuth checks issuer, audience and times, not the
    signature)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                now = int(time.time())
                claims = {"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
                          "nbf": now - 60, "iat": now - 60, "exp": now + 3600, "oid": "stand-in"}
                token = ".".join(_b64(part) for part in ({"alg": "RS256", "typ": "JWT"}, claims)) + "." + _b64({"sig": 0})
                send_json(self, {"access_token": token, "expires_on": str(now + 3600),
                                 "resource": "https://storage.azure.com", "token_type": "Bearer"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


STORES = {"s3": S3Store, "gs": GCSStore, "https": HTTPSStore, "azure": AzureStore}
