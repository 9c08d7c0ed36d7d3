"""Logging: JSON lines (one object per line) or plain text, to stderr.

The access log is the hot path (one line per request measured at ~30% of throughput when done through
`logging` with a formatter): it is built with orjson and written with a single os.write, which is
atomic for lines under PIPE_BUF, so worker threads never interleave inside a line.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

logger = logging.getLogger("mlgen_runtime")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage()}
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(log_format: str, log_level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, log_level.upper(), logging.INFO))


class AccessLog:
    """One line per request at info level (debug and info show it; warning and above do not)."""

    def __init__(self, log_format: str, stage: str) -> None:
        self.json = log_format == "json"
        self.stage = stage

    @property
    def enabled(self) -> bool:
        return logger.isEnabledFor(logging.INFO)

    def write(self, request_id: str, method: str, path: str, status: int, seconds: float) -> None:
        if self.json:
            line = orjson.dumps({"ts": round(time.time(), 3), "level": "info", "logger": "mlgen_runtime.access",
                                 "msg": "request", "request_id": request_id, "stage": self.stage,
                                 "method": method, "path": path, "status": status,
                                 "duration_ms": round(seconds * 1000, 3)}) + b"\n"
        else:
            line = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO mlgen_runtime.access {method} {path!r} {status} "
                    f"{seconds * 1000:.1f}ms request_id={request_id} stage={self.stage}\n").encode()
        try:
            os.write(2, line)
        except OSError:  # a closed stderr must not turn a served request into an error
            pass
