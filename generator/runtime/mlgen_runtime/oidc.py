"""JWTs from an OIDC issuer (serving.json `security.jwt`), verified with PyJWT.

The issuer's keys come from its JWKS (`jwks_url`, else the `jwks_uri` of the issuer's discovery
document), fetched over HTTPS with the system's trust store (SSL_CERT_FILE honoured), cached for
KEYS_MAX_AGE_S and fetched again when a token names a key id the cache does not hold (a rotated
key), at most once every UNKNOWN_KID_PAUSE_S so random key ids cannot turn callers into a flood on
the issuer. The algorithm is pinned: the spec's list or the issuer's asymmetric ones, never `none`
or an HMAC (whose "secret" would be the public key), and the key must be of that algorithm's kind.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.request

import jwt

from .config import JwtConfig

logger = logging.getLogger("mlgen_runtime")

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DEFAULT_ALGORITHMS = ("RS256",)  # what OIDC requires every issuer to offer
KEYS_MAX_AGE_S = 3600
UNKNOWN_KID_PAUSE_S = 10
FETCH_TIMEOUT_S = 5
MAX_DOCUMENT_BYTES = 1 << 20


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be fetched (the reason is for the log)."""


class TokenVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self.algorithms = tuple(a for a in config.algorithms if a in ASYMMETRIC)
        self._jwks_url = config.jwks_url
        self._keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}  # kid -> (key, the alg it declares)
        self._fetched_at = 0.0  # monotonic time of the last successful fetch
        self._unknown_kid_at = -UNKNOWN_KID_PAUSE_S  # of the last fetch caused by an unknown key id
        self._lock = threading.Lock()

    def prefetch(self) -> None:
        """Fetch the issuer's keys at startup, so the first caller does not wait for them; a
        failure is logged and tried again on the next request."""
        try:
            self._key(None)
        except IssuerUnavailable as exc:
            logger.warning("cannot fetch the token issuer's keys yet (tried again per request): %s", exc)

    def verify(self, token: str, guard) -> dict:
        """The token's claims; raises the guard's refusal (401, 403 or 503) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise guard.refused(401, "invalid", "the token is not a JWT") from None
        try:
            key = self._key(header.get("kid"))
        except IssuerUnavailable as exc:
            logger.error("cannot fetch the token issuer's keys: %s", exc)
            refused = guard.refused(503, "unavailable", "the token issuer's keys are not available right now", "temporarily_unavailable")
            raise refused from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise guard.refused(401, "invalid", f"tokens signed with {_printable(algorithm)} are not accepted") from None
        if key is None:
            raise guard.refused(401, "invalid", "the token names a key the issuer does not publish")
        key, declared = key
        if declared is not None and declared != algorithm:
            raise guard.refused(401, "invalid", "the token's algorithm is not its key's")
        config = self.config
        try:
            claims = jwt.decode(token, key.key, algorithms=[algorithm], audience=list(config.audience),
                                issuer=config.issuer, leeway=config.leeway_s,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise guard.refused(401, "expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise guard.refused(401, "invalid", "the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise guard.refused(401, "invalid", "the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise guard.refused(401, "invalid", "the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise guard.refused(401, "invalid", f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError:  # a bad signature, a key of another kind, malformed claims
            raise guard.refused(401, "invalid", "the token's signature does not verify") from None
        self._require(claims, guard)
        return claims

    def _require(self, claims: dict, guard) -> None:
        granted = claims.get("scope", claims.get("scp", ""))
        granted = set(granted.split() if isinstance(granted, str) else granted if isinstance(granted, list) else ())
        missing = [scope for scope in self.config.required_scopes if scope not in granted]
        if missing:
            raise guard.refused(403, "forbidden", f"the token lacks the scope {' '.join(missing)}",
                                scope=" ".join(self.config.required_scopes))
        for name, wanted in self.config.required_claims.items():
            value = claims.get(name)
            if not (value == wanted or (isinstance(value, list) and wanted in value)):
                raise guard.refused(403, "forbidden", f"the token's {_printable(name)} claim does not allow this service")

    def _key(self, kid: str | None):
        with self._lock:
            now = time.monotonic()
            if not self._keys or now - self._fetched_at > KEYS_MAX_AGE_S:
                self._refresh(now, keep_on_failure=bool(self._keys))
            elif kid not in self._keys and now - self._unknown_kid_at >= UNKNOWN_KID_PAUSE_S:
                self._unknown_kid_at = now
                self._refresh(now, keep_on_failure=True)
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return self._keys.get(kid)

    def _refresh(self, now: float, keep_on_failure: bool) -> None:
        try:
            if self._jwks_url is None:
                discovery = _fetch_json(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
                if discovery.get("issuer") != self.config.issuer:
                    raise IssuerUnavailable("the discovery document names another issuer")
                offered = discovery.get("id_token_signing_alg_values_supported") or DEFAULT_ALGORITHMS
                if not self.algorithms:
                    self.algorithms = tuple(a for a in offered if a in ASYMMETRIC)
                self._jwks_url = str(discovery["jwks_uri"])
            keys = {}
            for item in _fetch_json(self._jwks_url).get("keys", []):
                try:
                    key = jwt.PyJWK(item)
                except jwt.PyJWTError:
                    continue  # a key of a kind this service does not verify with (an HMAC "oct" key, say)
                if item.get("use", "sig") == "sig":
                    keys[item.get("kid")] = (key, item.get("alg"))
        except (IssuerUnavailable, OSError, ValueError, KeyError, TypeError) as exc:
            if keep_on_failure:
                logger.warning("cannot refresh the token issuer's keys, keeping the cached ones: %s", exc)
                return
            raise IssuerUnavailable(str(exc)) from None
        if not self.algorithms:
            self.algorithms = DEFAULT_ALGORITHMS
        self._keys, self._fetched_at = keys, now


def _fetch_json(url: str) -> dict:
    if not url.startswith("https://"):
        raise IssuerUnavailable(f"{url} is not an https URL")
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S, context=ssl.create_default_context()) as answer:
        document = json.loads(answer.read(MAX_DOCUMENT_BYTES))
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


def _printable(value) -> str:
    # Caller-controlled text lands in a response header: keep it short, plain and without quotes.
    text = str(value)[:40]
    return "".join(c for c in text if c.isalnum() or c in "-_.:") or "?"
