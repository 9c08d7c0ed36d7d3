"""An OpenID Connect issuer on 127.0.0.1 for the authentication tests: HTTPS with a throwaway CA
(trustme), a discovery document, a JWKS it can rotate, and the tokens it signs, good and bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers import send_json

AUDIENCE = "iris-api"


class Issuer:
    def __init__(self, folder: Path) -> None:
        ca = trustme.CA()
        self.ca_file = folder / "issuer-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.keys = {"key-1": _rsa_key()}
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path == "/.well-known/openid-configuration":
                    document = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                                "id_token_signing_alg_values_supported": ["RS256", "HS256"]}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    document = {"keys": [issuer.public_jwk(kid) for kid in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                send_json(self, document)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def public_jwk(self, kid: str) -> dict:
        document = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**document, "kid": kid, "use": "sig", "alg": "RS256"}

    def rotate(self) -> str:
        """Publish a new signing key beside the old one; its key id."""
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = _rsa_key()
        return kid

    def claims(self, **changes) -> dict:
        now = int(time.time())
        return {"iss": self.url, "aud": AUDIENCE, "sub": "client-7", "iat": now, "exp": now + 300,
                "scope": "predict", **changes}

    def token(self, kid: str = "key-1", key=None, **changes) -> str:
        """A token signed by `key` (default: the published key `kid`)."""
        claims = {name: value for name, value in self.claims(**changes).items() if value is not None}
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def unsigned_token(self) -> str:
        """`alg: none`: no signature at all."""
        return _compact({"alg": "none", "typ": "JWT"}, self.claims(), b"")

    def hmac_token_with_public_key(self, kid: str = "key-1") -> str:
        """The algorithm-confusion attack: HS256 keyed with the issuer's public key, which anyone has."""
        public = self.keys[kid].public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        header, claims = {"alg": "HS256", "typ": "JWT", "kid": kid}, self.claims()
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        return _compact(header, claims, hmac.new(public, signing_input, hashlib.sha256).digest())


def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict, claims: dict, signature: bytes) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"
