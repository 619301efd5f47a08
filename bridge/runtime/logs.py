"""Logging setup: one line per record, as text or JSON, on stderr.

Route loggers carry the sink name (`extra={"sink": ...}`); it appears as `sink=NAME` in
text and as a `sink` field in JSON, so every line about a route can be filtered by sink.
Both formatters pass the whole line (message, fields, exception text) through
`bridge.core.redact.scrub`: a peer's words quoted in a message never carry a secret out.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from bridge.core.redact import scrub

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        sink = getattr(record, "sink", None)
        where = f" sink={sink}" if sink else ""
        line = f"{stamp[:-3]}Z {record.levelname:<7} {record.name}{where}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(document, default=str).decode())


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request lines at INFO and their own tracebacks at ERROR; the bridge
    # reports each failure itself, in one line, without secrets.
    for noisy in ("httpx", "httpcore", "azure"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for quiet in ("azure.servicebus", "azure.identity", "azure.core.pipeline"):
        logging.getLogger(quiet).setLevel(logging.CRITICAL)


def report(line: str) -> None:
    """An error for the operator: `dicom-bridge: <line>` on stderr, or a JSON log record
    when logs are JSON (so every stderr line parses)."""
    if isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter):
        logging.getLogger("bridge.cli").error(line)
    else:
        print(scrub(f"dicom-bridge: {line}"), file=sys.stderr)
