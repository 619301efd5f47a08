"""librdkafka's mock Kafka cluster, held by a helper process, with a line-based control API.

The mock brokers (real Kafka wire protocol on 127.0.0.1) live inside the librdkafka
instance that created them and die with it, so a dedicated child process owns them for a
whole test session (or benchmark). The parent drives it over the child's stdin/stdout, one
command per line, one reply per line (`ok [...]` or `error ...`); closing the child's stdin
shuts it down, so nothing outlives a crashed test run.

    with KafkaMock(brokers=3) as kafka:
        kafka.create_topic("dicom.changes", partitions=6)
        kafka.set_down(1); kafka.set_up(1)                  # a broker outage
        kafka.push_broker_errors(2, "Produce", "NOT_LEADER_FOR_PARTITION", "REQUEST_TIMED_OUT")
        assert kafka.errors_left(2, "Produce") == 0         # ...once the producer hit them

Reading records back: `tests.peers.kafka_records` (`read_all`, `Collector`).

A broker's own error stack for an API (`push_broker_errors`) shadows the cluster-wide one
(`push_errors`) on that broker from then on, even once empty, and cannot be cleared: tests
sharing a cluster push broker errors only where they will be consumed.

The child calls the mock C API (`rdkafka_mock.h`) with ctypes on the librdkafka shared
object bundled in the confluent-kafka wheel: `python -m tests.peers.kafka_mock --brokers 3`
prints `bootstrap <host:port,...>` and then serves these commands:

    topic NAME PARTITIONS [REPLICATION]   create a topic (the mock has no CreateTopics API)
    down BROKER | up BROKER               disconnect a broker and refuse connections (-1: all)
    errors APIKEY CODE...                 fail the next requests of that API with these codes
    broker_errors BROKER APIKEY CODE...   the same on one broker only
    errors_left BROKER APIKEY             `ok N`: how many of a broker's injected errors remain
    clear APIKEY                          drop the queued errors of that API
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any, Self

from bridge.simulator.child import LineChild
from tests.peers.kafka_records import consumer

#: Kafka protocol API keys the tests inject errors into.
API_KEYS = {"Produce": 0, "InitProducerId": 22}


# -- the helper process ------------------------------------------------------------------


def _librdkafka() -> ctypes.CDLL:
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [path] = sorted(libs.glob("librdkafka*.so*"))
    lib = ctypes.CDLL(str(path))
    p, i, i16, i32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int16, ctypes.c_int32
    signatures = {
        "rd_kafka_conf_new": (p, []),
        "rd_kafka_conf_set": (i, [p, ctypes.c_char_p, ctypes.c_char_p, p, ctypes.c_size_t]),
        "rd_kafka_new": (p, [i, p, ctypes.c_char_p, ctypes.c_size_t]),
        "rd_kafka_destroy": (None, [p]),
        "rd_kafka_mock_cluster_new": (p, [p, i]),
        "rd_kafka_mock_cluster_destroy": (None, [p]),
        "rd_kafka_mock_cluster_bootstraps": (ctypes.c_char_p, [p]),
        "rd_kafka_mock_topic_create": (i, [p, ctypes.c_char_p, i, i]),
        "rd_kafka_mock_broker_set_down": (i, [p, i32]),
        "rd_kafka_mock_broker_set_up": (i, [p, i32]),
        "rd_kafka_mock_push_request_errors_array": (
            None,
            [p, i16, ctypes.c_size_t, ctypes.POINTER(i)],
        ),
        "rd_kafka_mock_clear_request_errors": (None, [p, i16]),
        "rd_kafka_mock_broker_error_stack_cnt": (
            i,
            [p, i32, i16, ctypes.POINTER(ctypes.c_size_t)],
        ),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": (None, [p, i32]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class _Cluster:
    """The mock cluster and the librdkafka instance owning it (child side)."""

    def __init__(self, brokers: int) -> None:
        self.lib = lib = _librdkafka()
        conf = lib.rd_kafka_conf_new()
        lib.rd_kafka_conf_set(conf, b"log_level", b"3", None, 0)
        errstr = ctypes.create_string_buffer(512)
        self.rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # 0: a producer handle
        if not self.rk:
            raise RuntimeError(errstr.value.decode())
        self.mc = lib.rd_kafka_mock_cluster_new(self.rk, brokers)
        if not self.mc:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self.mc, 0)
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self.mc).decode()

    def run(self, words: list[str]) -> str:
        lib, mc = self.lib, self.mc
        match words:
            case ["topic", name, partitions, *replication]:
                rf = int(replication[0]) if replication else 1
                return _status(
                    lib.rd_kafka_mock_topic_create(mc, name.encode(), int(partitions), rf)
                )
            case ["down", broker]:
                return _status(lib.rd_kafka_mock_broker_set_down(mc, int(broker)))
            case ["up", broker]:
                return _status(lib.rd_kafka_mock_broker_set_up(mc, int(broker)))
            case ["errors", api_key, *codes] if codes:
                array = (ctypes.c_int * len(codes))(*map(int, codes))
                lib.rd_kafka_mock_push_request_errors_array(mc, int(api_key), len(codes), array)
                return "ok"
            case ["broker_errors", broker, api_key, *codes] if codes:
                pairs = [ctypes.c_int(value) for code in codes for value in (int(code), 0)]
                return _status(
                    lib.rd_kafka_mock_broker_push_request_error_rtts(  # variadic: (err, rtt)...
                        ctypes.c_void_p(mc),
                        ctypes.c_int32(int(broker)),
                        ctypes.c_int16(int(api_key)),
                        ctypes.c_size_t(len(codes)),
                        *pairs,
                    )
                )
            case ["errors_left", broker, api_key]:
                count = ctypes.c_size_t()
                code = lib.rd_kafka_mock_broker_error_stack_cnt(
                    mc, int(broker), int(api_key), ctypes.byref(count)
                )
                return f"ok {count.value}" if code == 0 else _status(code)
            case ["clear", api_key]:
                lib.rd_kafka_mock_clear_request_errors(mc, int(api_key))
                return "ok"
        return f"error unknown command: {' '.join(words)}"

    def close(self) -> None:
        self.lib.rd_kafka_mock_cluster_destroy(self.mc)
        self.lib.rd_kafka_destroy(self.rk)


def _status(code: int) -> str:
    return "ok" if code == 0 else f"error librdkafka error code {code}"


def serve(brokers: int) -> int:
    cluster = _Cluster(brokers)
    print(f"bootstrap {cluster.bootstrap}", flush=True)
    try:
        for line in sys.stdin:  # EOF (the parent closed our stdin or died): shut down
            words = line.split()
            if words:
                try:
                    reply = cluster.run(words)
                except (ValueError, TypeError) as exc:
                    reply = f"error {exc}"
                print(reply, flush=True)
    finally:
        cluster.close()
    return 0


# -- the parent side ---------------------------------------------------------------------


class MockError(Exception):
    """The helper refused a command or did not answer in time."""


class KafkaMock(LineChild):
    """Starts the helper process and sends it commands (each answered within `timeout`)."""

    what = "kafka mock"
    error = MockError

    def __init__(self, brokers: int = 3, timeout: float = 30.0) -> None:
        argv = [sys.executable, "-m", "tests.peers.kafka_mock", "--brokers", str(brokers)]
        super().__init__(argv, commands=True, cwd=Path(__file__).parents[2])
        self.brokers = brokers
        self.timeout = timeout
        self.bootstrap = ""

    def start(self) -> Self:
        super().start()
        try:
            line = self.read_line(self.timeout).decode().strip()
            if not line.startswith("bootstrap "):
                raise MockError(f"unexpected first line {line!r}: {self.stderr()}")
            self.bootstrap = line.split(" ", 1)[1]
        except BaseException:
            self.close()
            raise
        return self

    def command(self, *words: Any) -> str:
        self.send_line(" ".join(map(str, words)).encode())
        reply = self.read_line(self.timeout).decode().strip()
        if reply != "ok" and not reply.startswith("ok "):
            raise MockError(f"{' '.join(map(str, words))}: {reply}")
        return reply

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        self.command("topic", name, partitions, replication)

    def set_down(self, broker: int = -1) -> None:
        """Disconnect `broker` (-1: all) and refuse new connections; leaders do not move."""
        self.command("down", broker)

    def set_up(self, broker: int = -1) -> None:
        self.command("up", broker)

    def push_errors(self, api: str, *errors: str | int) -> None:
        """Fail the next requests of `api` (e.g. "Produce") with these error codes (names
        of `confluent_kafka.KafkaError` constants or numbers), one request each.

        Beware: once a broker has had errors of its own for `api` (`push_broker_errors`),
        its (even empty) error stack shadows these cluster-wide ones on that broker."""
        self.command("errors", API_KEYS[api], *map(error_code, errors))

    def push_broker_errors(self, broker: int, api: str, *errors: str | int) -> None:
        """Like `push_errors`, for the requests `broker` receives."""
        self.command("broker_errors", broker, API_KEYS[api], *map(error_code, errors))

    def leader(self, topic: str, partition: int = 0) -> int:
        """The broker id leading a partition of an existing topic."""
        client = consumer(self.bootstrap)
        try:
            metadata = client.list_topics(topic, timeout=self.timeout).topics[topic]
            return metadata.partitions[partition].leader
        finally:
            client.close()

    def errors_left(self, broker: int, api: str) -> int:
        """How many of the errors pushed on `broker` for `api` are still waiting."""
        return int(self.command("errors_left", broker, API_KEYS[api]).split()[1])

    def clear_errors(self, api: str) -> None:
        self.command("clear", API_KEYS[api])

    def reset_faults(self) -> None:
        """Every broker up, no queued cluster-wide request errors (a broker's
        own error stack cannot be cleared: tests consume what they push there)."""
        self.set_up(-1)
        for api in API_KEYS:
            self.clear_errors(api)


def error_code(error: str | int) -> int:
    if isinstance(error, int):
        return error
    from confluent_kafka import KafkaError

    return int(getattr(KafkaError, error))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="hold a librdkafka mock Kafka cluster")
    parser.add_argument("--brokers", type=int, default=3)
    sys.exit(serve(parser.parse_args().brokers))
