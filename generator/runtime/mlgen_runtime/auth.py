"""Who may call the service (serving.json `security`).

The entry process (`--stage all` or `gateway`) asks its callers for one of the API keys or for a
JWT from the configured OIDC issuer (oidc.py); a stage service of a split pipeline asks for the
token it shares with its gateway, when serving.json names one. Health and metrics never ask: probes
and scrapers carry no credentials (`runtime.admin_port` moves them off the public port).

Credentials are never in serving.json: it names them, and each arrives the way its platform
delivers secrets, as a systemd credential file (`$CREDENTIALS_DIRECTORY/NAME`, LoadCredential=) or
an environment variable of the same name (Kubernetes secretKeyRef, the function platforms' stores).
A refusal is a 401 (no or a bad credential) or a 403 (a good token without the scopes or claims
asked for), with a WWW-Authenticate challenge; it is counted by reason and logged without the
credential.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from .config import ConfigError, SecurityConfig
from .errors import RequestError

logger = logging.getLogger("mlgen_runtime")

# Answered without credentials: liveness, readiness and the metrics scrape.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
STAGE_TOKEN_HEADER = "x-mlgen-stage-token"
MIN_KEY_CHARACTERS = 16  # a shorter key could be guessed online


def credential(name: str, environ=None) -> str | None:
    """A secret delivered to this process: its systemd credential file, else the environment variable."""
    environ = os.environ if environ is None else environ
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / name
        if path.is_file():
            return path.read_text(encoding="utf-8").strip("\r\n")
    return environ.get(name)


class Refused(RequestError):
    """A caller without the credentials this service asks for."""

    def __init__(self, status: int, reason: str, message: str, challenge: str) -> None:
        super().__init__(status, message, {"www-authenticate": challenge})
        self.reason = reason  # the metric's label: missing, invalid, expired, forbidden, unavailable


class Guard:
    """Checks one request's credentials; `check(headers)` returns or raises Refused."""

    def __init__(self, security: SecurityConfig, stage: str, service_name: str, environ=None) -> None:
        self.realm = f'realm="{service_name}"'
        self.header = security.header
        self.bearer = security.header == "authorization"
        self.keys: tuple[bytes, ...] = ()
        self.tokens = None
        if stage in ("all", "gateway"):
            self.mode = security.auth
            if security.auth == "api_key":
                self.keys = tuple(_digest(_required(name, "security.api_keys", environ)) for name in security.api_keys)
            elif security.auth == "jwt":
                from .oidc import TokenVerifier  # the JWT library is installed only by services that use it

                self.tokens = TokenVerifier(security.jwt)
        elif security.stage_token:
            # A stage answers its gateway only; the public credentials stay with the gateway.
            self.mode, self.header, self.bearer = "stage_token", STAGE_TOKEN_HEADER, False
            self.keys = (_digest(_required(security.stage_token, "security.stage_token", environ)),)
        else:
            self.mode = "none"
        self.enabled = self.mode != "none"  # read on every request: an attribute, not a property

    def check(self, headers: dict[str, str]) -> dict | None:
        """The token's claims (jwt), None for a key; `headers` have lower-case names."""
        given = headers.get(self.header)
        if self.bearer and given is not None:
            scheme, _, given = given.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise self.refused(401, "invalid", f"the {self.header} header must be `Bearer <credential>`")
            given = given.strip()
        if not given:
            raise self.refused(401, "missing", f"no credentials: send {self._how()}")
        if self.tokens is not None:
            return self.tokens.verify(given, self)
        digest = _digest(given)
        matched = False
        for key in self.keys:  # every key compared, in constant time: no early exit to time
            matched |= hmac.compare_digest(digest, key)
        if not matched:
            raise self.refused(401, "invalid", "the credentials are not valid")
        return None

    def refused(self, status: int, reason: str, message: str, error: str | None = None, scope: str = "") -> Refused:
        """A refusal with its challenge (RFC 6750: no error code when no credential was sent)."""
        if self.mode == "jwt" or self.bearer:
            code = error or ("insufficient_scope" if status == 403 else "invalid_token")
            challenge = f"Bearer {self.realm}"
            if reason != "missing":
                challenge += f', error="{code}", error_description="{message}"'
            if scope:
                challenge += f', scope="{scope}"'
        else:
            challenge = f'ApiKey {self.realm}, header="{self.header}"'
        return Refused(status, reason, message, challenge)

    def _how(self) -> str:
        if self.bearer:
            return "Authorization: Bearer <token>" if self.mode == "jwt" else "Authorization: Bearer <API key>"
        return f"the {self.header} header"


def _required(name: str, field: str, environ) -> str:
    value = credential(name, environ)
    if not value:
        raise ConfigError(f"{field}: the credential {name} was not delivered "
                          f"(no $CREDENTIALS_DIRECTORY/{name} and no environment variable {name})")
    if len(value) < MIN_KEY_CHARACTERS:
        raise ConfigError(f"{field}: the credential {name} is shorter than {MIN_KEY_CHARACTERS} characters")
    return value


def _digest(value: str) -> bytes:
    # Compared as digests: equal lengths, so the comparison's time says nothing about the key's length.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def log_refusal(refused: Refused, request_id: str, path: str) -> None:
    """One warning line per refused request: the reason, never the credential."""
    logger.warning("authentication failed on %s: %s (%s)", path, refused.message, refused.reason,
                   extra={"request_id": request_id})
