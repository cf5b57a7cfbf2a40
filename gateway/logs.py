"""Structured logs: one JSON object per line. Nothing here ever receives a token, a secret or a
released value; request ids tie a log line to its audit entry."""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any

from gateway.errors import GatewayError


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = redacted_traceback(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def redacted_traceback(exc_info: Any) -> str:
    """A traceback with every frame but, for anything other than the gateway's own errors
    (written for people, quoting no data), without the exception's message: a library's
    message may quote the cell it choked on (pandas does)."""
    _, value, tb = exc_info
    frames = "".join(traceback.format_list(traceback.extract_tb(tb)))
    if value is None:
        return frames
    shown = (
        f": {value}" if isinstance(value, GatewayError) else " (message withheld: may quote data)"
    )
    return f"Traceback (most recent call last):\n{frames}{type(value).__name__}{shown}"


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gateway": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
    },
}
