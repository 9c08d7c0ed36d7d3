"""Errors that become HTTP answers. Everything else a handler raises is a 500 without its traceback."""

from __future__ import annotations


class RequestError(Exception):
    """A request the runtime refuses (4xx) or cannot serve right now (502/503/504), with the reason
    the client sees in `{"error": ...}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}  # answered with the error (WWW-Authenticate on a 401 or 403)


class ModelError(Exception):
    """The model or a user handler raised, or returned something that does not fit the spec."""
