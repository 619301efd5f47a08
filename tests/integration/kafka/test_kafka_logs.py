"""A Kafka cluster that is down does not flood the logs: librdkafka's reconnect lines are
counted, one line per `logs.summary_interval`."""

from __future__ import annotations

import re
import time

from tests.e2e.helpers import start_bridge, stop, wait_for, write_config
from tests.integration.kafka.test_kafka_cli import closed_port, kafka_sink


def test_librdkafka_reconnecting_to_a_dead_broker_is_counted(simulator, tmp_path):
    sim = simulator(entries=50)
    bootstrap = f"127.0.0.1:{closed_port()}"
    interval, duration = 1.0, 6.0
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [
            kafka_sink(
                bootstrap,
                "dicom.changes",
                producer={"reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 50},
            )
        ],
        logs={"summary_interval": f"{interval:g}s"},
    )
    started = time.monotonic()
    process = start_bridge("run", "-c", str(config))
    try:
        wait_for(lambda: time.monotonic() - started > duration, duration + 5, 0.1, "the run")
    finally:
        stop(process)
    elapsed = time.monotonic() - started
    stderr = process.stderr.read()
    librdkafka = [line for line in stderr.splitlines() if "librdkafka" in line]
    counted = [
        int(m[1]) for m in re.finditer(r": (\d+) more like this .*\(last: librdkafka", stderr)
    ]
    assert sum(counted) > len(librdkafka), "librdkafka hardly logged: nothing to count"
    # The first line, then one count per interval (windows last an interval at least), and
    # the last count at exit.
    assert len(librdkafka) <= elapsed / interval + 3, stderr
