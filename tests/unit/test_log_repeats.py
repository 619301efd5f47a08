"""Repeated log records are counted, not printed: the first one of a run, then one line per
interval with the count (`bridge.runtime.logs.Repeats`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from bridge.runtime.logs import Repeats


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def setup() -> Iterator[tuple[Repeats, Lines, list[float]]]:
    now = [0.0]
    repeats = Repeats(interval=30.0, clock=lambda: now[0])
    lines = Lines()
    lines.addFilter(repeats)
    names = ("bridge.route", "sinks.kafka", "azure.core", "httpx")
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(lines)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    yield repeats, lines, now
    for logger in loggers:
        logger.removeHandler(lines)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_a_run_of_warnings_is_one_line_then_one_count_per_interval(setup):
    repeats, lines, now = setup
    log = logging.LoggerAdapter(logging.getLogger("bridge.route"), {"sink": "hooks"})
    for sequence in range(1, 101):
        log.warning("sequence %s dead-lettered: %s", sequence, "400 Bad Request")
        now[0] += 0.1  # 100 in 10 s
    assert lines.messages == ["sequence 1 dead-lettered: 400 Bad Request"]
    repeats.flush()
    assert len(lines.records) == 1  # the interval is not over
    now[0] = 30.0
    repeats.flush()
    assert lines.messages[1] == (
        "99 more like this in the last 30s (last: sequence 100 dead-lettered: 400 Bad Request)"
    )
    assert lines.records[1].sink == "hooks" and lines.records[1].repeated == 99
    assert lines.records[1].levelno == logging.WARNING

    # Still going: counted in the next interval, reported once it is over.
    log.warning("sequence %s dead-lettered: %s", 101, "400 Bad Request")
    now[0] = 45.0
    repeats.flush()
    assert len(lines.records) == 2
    now[0] = 61.0
    log.warning("sequence %s dead-lettered: %s", 102, "400 Bad Request")  # reports the last
    assert lines.messages[2].startswith("1 more like this in the last 31s (last: sequence 101")
    repeats.flush(final=True)
    assert lines.messages[3].startswith("1 more like this in the last 0s (last: sequence 102")

    # Quiet for a whole interval: the next one is printed again.
    now[0] = 200.0
    repeats.flush()
    log.warning("sequence %s dead-lettered: %s", 103, "400 Bad Request")
    assert lines.messages[4] == "sequence 103 dead-lettered: 400 Bad Request"


def test_what_is_aggregated(setup):
    _, lines, _ = setup
    own = logging.getLogger("bridge.route")
    for _ in range(3):
        own.info("caught up")  # the project's INFO: never held back
        logging.getLogger("azure.core").info("request to %s", "https://x")  # a library's INFO
        own.warning("%s", "disk full on /out")  # all placeholders: by message
        own.warning("%s", "the offset store is locked")
        own.warning("%s", "cannot reach 10.0.0.1:9092")  # numbers aside, one message
        own.warning("%s", "cannot reach 10.0.0.2:9093")
        kafka = logging.getLogger("sinks.kafka")  # librdkafka's lines, lowered to WARNING
        kafka.warning("librdkafka %s: %s", "FAIL", "127.0.0.1:9092/bootstrap: Connect refused")
    assert lines.messages == [
        "caught up",
        "request to https://x",
        "disk full on /out",
        "the offset store is locked",
        "cannot reach 10.0.0.1:9092",
        "librdkafka FAIL: 127.0.0.1:9092/bootstrap: Connect refused",
        "caught up",
        "caught up",
    ]


def test_threads_logging_at_once_are_counted_exactly(setup):
    repeats, lines, _ = setup
    library = logging.getLogger("httpx")

    def chatter() -> None:
        for _ in range(1_000):
            library.error("connection to %s refused", "broker:9092")

    threads = [threading.Thread(target=chatter) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    repeats.flush(final=True)
    assert len(lines.records) == 2
    assert lines.records[1].repeated == 7_999
