"""Logging setup: one line per record, as text or JSON, on stderr.

Route loggers carry the sink name (`extra={"sink": ...}`); it appears as `sink=NAME` in
text and as a `sink` field in JSON, so every line about a route can be filtered by sink.
Both formatters pass the whole line (message, fields, exception text) through
`bridge.core.redact.scrub`: a peer's words quoted in a message never carry a secret out.

Repeated lines are counted, not printed (`Repeats`): a warning (a dead letter, a retry, a
reconnect) is logged the first time, then once per `logs.summary_interval` as "N more like
this in the last 30s"; the same holds for every record of a third-party library (httpx,
azure, librdkafka through the Kafka sink...), whatever its level.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from bridge.core.redact import scrub

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_OWN = ("bridge", "sinks")  # the project's loggers; the others are libraries'
_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfgix]|[^A-Za-z]")


@dataclass
class _Window:
    started: float
    first: logging.LogRecord
    count: int = 0  # records held back since `started`
    last: str = ""


class Repeats(logging.Filter):
    """Lets the first of a run of similar records through, then counts the others and
    reports them as one record per `interval` (`flush`, or the next similar record after
    the interval). Similar: same logger, level, sink and message template (or, for a
    template that is all placeholders, the same message but for its numbers). Applies to
    warnings and errors, and to every record of a library. Thread-safe (librdkafka logs
    from its own threads)."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int, str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "repeated") or not _aggregated(record):
            return True
        key = (record.name, record.levelno, str(getattr(record, "sink", "")), _template(record))
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or (now - window.started >= self.interval and not window.count):
                self._windows[key] = _Window(now, record)
                return True
            due = window if now - window.started >= self.interval else None
            if due is not None:  # this record opens the next window, counted
                self._windows[key] = window = _Window(now, record)
            window.count += 1
            window.last = record.getMessage()
        if due is not None:
            self._report(due, now)
        return False

    def flush(self, final: bool = False) -> None:
        """Report the counts of windows whose interval is over (every count: `final`)."""
        now = self._clock()
        with self._lock:
            due = [
                (key, window)
                for key, window in self._windows.items()
                if final or now - window.started >= self.interval
            ]
            for key, window in due:
                if window.count:
                    self._windows[key] = _Window(now, window.first)
                else:
                    del self._windows[key]
        for _, window in due:
            if window.count:
                self._report(window, now)

    def _report(self, window: _Window, now: float) -> None:
        first = window.first
        extra: dict[str, object] = {"repeated": window.count}
        sink = getattr(first, "sink", None)
        if sink:
            extra["sink"] = sink
        logging.getLogger(first.name).log(
            first.levelno,
            "%d more like this in the last %ss (last: %s)",
            window.count,
            f"{now - window.started:.2g}"
            if now - window.started < 10
            else round(now - window.started),
            window.last,
            extra=extra,
        )


def _aggregated(record: logging.LogRecord) -> bool:
    own = record.name in _OWN or record.name.startswith(("bridge.", "sinks."))
    return record.levelno >= logging.WARNING or not own


def _template(record: logging.LogRecord) -> str:
    template = record.msg if isinstance(record.msg, str) else ""
    if len(_LETTERS.sub("", template)) >= 8:
        return template
    return _DIGITS.sub("#", record.getMessage())


_REPEATS = Repeats()


def repeats() -> Repeats:
    """The filter `setup_logging` installs (its interval is set from the config)."""
    return _REPEATS


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
    global _REPEATS
    _REPEATS = Repeats()  # nothing counted yet (a CLI called twice in one process)
    handler.addFilter(_REPEATS)
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
