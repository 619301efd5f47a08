"""What one hostile catch-up serves, and what it must achieve.

A feed of 20,000 entries with metadata (about 200 windows of 100 sequences) is read through
the proxy. The bridge's first `latest` requests get a JSON object, a maintenance page, a
truncated body and a gzip bomb. Then, as the catch-up proceeds (counted in windows asked
for, so that retries do not move the schedule), the pages get a 6-second maintenance window,
and fresh windows get JSON objects, truncated bodies (honest and lying Content-Length), gzip
bombs, 300 MiB of junk and slow-loris answers, each several times in a row (`times`), as a
page that keeps failing does. Slow-loris comes last: a client without a total deadline hangs
on it, and by then the faults before it have shown what else such a client does wrong.

`feed.timeout` is lowered from 30 s to 5 s: each slow-loris answer costs the bridge one
whole timeout before it is cut, and two of them at 30 s would take half of the two minutes
the catch-up is allowed. Five seconds is still a hundred times what a page takes here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tests.hostile.proxy import Fault

SCHEDULE: tuple[Fault, ...] = (
    Fault("json-object", "latest"),
    Fault("html", "latest"),
    Fault("truncated", "latest"),
    Fault("gzip-bomb", "latest"),
    Fault("html", "any", after=10, seconds=6.0),
    Fault("json-object", after=30, times=4),
    Fault("truncated", after=45, times=4),
    Fault("truncated-lying", after=60, times=2),
    Fault("gzip-bomb", after=75, times=2),
    Fault("junk", after=90, times=2),
    Fault("slow-loris", after=110, times=2),
)

#: The acceptance bounds.
DEADLINE = 120.0  # seconds for the whole catch-up, from the bridge's start to its exit
RSS_LIMIT_MB = 300  # bridge + helper
#: The bridge's address space: a regression fails the test instead of exhausting the machine.
ADDRESS_SPACE = 4 << 30


@dataclass(frozen=True)
class Plan:
    entries: int = 20_000
    seed: int = 13
    include_metadata: bool = True
    metadata_size: int = 0  # 0: the simulator's default (~700 bytes per instance)
    feed_timeout: str = "5s"
    faults: tuple[Fault, ...] = SCHEDULE
    deadline: float = DEADLINE

    def without(self, kinds: set[str]) -> Plan:
        """The same plan without the faults of these kinds."""
        kept = tuple(fault for fault in self.faults if fault.kind not in kinds)
        return replace(self, faults=kept)
