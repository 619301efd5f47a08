"""What every sink type gives the contract suite (`contract.py`): a harness around its peer.

A harness starts the sink's real peer once per test module, gives each test a destination
of its own (a topic, a queue, a file), builds the sink's config for it, reads back what the
peer holds, and plays the peer's failures: down and back, refusing one event for good,
refusing our credentials, the destination gone. A sink type without one of these failures
declares it with the reason (`no_outage`, `no_permanent`, `no_credentials`,
`no_destination`): its contract test is skipped with that reason, in the open, rather than
missing.

One module per sink type, `tests/sinks/<type>.py`, holds a class `Harness` subclassing
`SinkHarness`; `tests/sinks/README.md` says how to write one.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bridge.core.event import Event
from bridge.delivery.format import Formatter
from tests.factories import SOURCE, entry

#: The route name of every contract sink.
ROUTE = "contract"


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the peer holds it.

    `id`: the event id as the transport carries it (a message id, a header), None where the
    transport has no such field and the id travels in the body only; `key`: the ordering key
    as the transport carries it (a record key, a session id), None where it has none;
    `body`: the bytes a consumer reads."""

    body: bytes
    id: str | None = None
    key: str | None = None


class SinkHarness(abc.ABC):
    """A sink type's peer, driven for the contract suite."""

    #: The sink type (a key of `sinks.SINK_TYPES`).
    type: ClassVar[str]
    #: Why the peer cannot be down and back for this sink (no transient test, no probe of
    #: an unreachable peer), or None.
    no_outage: ClassVar[str | None] = None
    #: Why no event can be refused for good by this sink's peer (no permanent test), or None.
    no_permanent: ClassVar[str | None] = None
    #: Why this sink's peer cannot refuse its credentials (no fatal test of it), or None.
    no_credentials: ClassVar[str | None] = None
    #: Why this sink's destination cannot go away (no fatal test of it), or None.
    no_destination: ClassVar[str | None] = None
    #: Why the peer drops a message whose id it already holds (the same event sent twice is
    #: then held once, the duplicate acknowledged), or None.
    deduplicates: ClassVar[str | None] = None
    #: Secret values the sink's config holds: no error, log line or repr may show them.
    secrets: ClassVar[tuple[str, ...]] = ()
    #: Names (prefixes) of the threads a peer running in the test process starts, which
    #: are not the sink's leftovers.
    peer_threads: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def start(self, workdir: Path) -> None:
        """Start the peer (once per test module); `workdir` is the module's scratch space."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the peer and everything `start` began."""

    @abc.abstractmethod
    def reset(self, workdir: Path) -> None:
        """A destination of its own for the next test (`workdir`: the test's scratch
        space), the peer up and without faults."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The sink's config (as YAML would give it) for the current destination."""

    @abc.abstractmethod
    def received(self) -> list[Received]:
        """What the peer holds for the current destination, in the order it keeps it
        (per ordering key, the order it received it)."""

    def take_down(self) -> None:
        """Make the peer unreachable (connections refused or broken)."""
        raise NotImplementedError(self.no_outage)

    def bring_back(self) -> None:
        """End `take_down`: the peer reachable again where it was, holding what it held."""
        raise NotImplementedError(self.no_outage)

    def refuse(self, sequence: int) -> Event:
        """An event of entry `sequence` that the peer will refuse for good (set up now)."""
        raise NotImplementedError(self.no_permanent)

    def refuse_credentials(self) -> None:
        """Make the peer refuse the sink's credentials from now on."""
        raise NotImplementedError(self.no_credentials)

    def remove_destination(self) -> None:
        """Make the destination (topic, queue, endpoint) gone from now on."""
        raise NotImplementedError(self.no_destination)


def load(sink_type: str) -> SinkHarness:
    """The harness of `sink_type`, from `tests/sinks/<type>.py`."""
    module = importlib.import_module(f"tests.sinks.{sink_type}")
    harness = module.Harness()
    assert harness.type == sink_type, f"tests/sinks/{sink_type}.py is the harness of {harness.type}"
    return harness


def make_events(first: int, count: int, studies: tuple[str, ...]) -> list[Event]:
    """Structured CloudEvents of entries `first`.. `first+count-1`, the studies taking turns
    (so each study has several events, interleaved with the others')."""
    formatter = Formatter(SOURCE)
    return [
        formatter.event(entry(sequence, study=studies[index % len(studies)]))
        for index, sequence in enumerate(range(first, first + count))
    ]


def one_event(sequence: int, pad: int = 0) -> Event:
    """A structured CloudEvent of entry `sequence`, its body `pad` bytes longer."""
    return Formatter(SOURCE).event(entry(sequence, **({"pad": "x" * pad} if pad else {})))
