"""The invariants every scenario ends with, per sink, and the scenario's result.

- Nothing missing: every admitted sequence (the route's filter admits it) is in the sink or
  its dead-letter file; and nothing dead-lettered (no scenario rejects anything for good,
  so a dead letter means a transient failure was taken for a permanent one).
- No cursor ahead of its sink: whenever an incarnation ended, every admitted sequence at or
  below each committed cursor was already in that sink (from it or earlier incarnations);
  after a clean stop, nothing beyond it either (the cursor is exactly what was delivered).
- Duplicates within the README's bound: an incarnation resumes after the cursor it found
  and re-delivers only entries beyond it that earlier incarnations delivered without
  committing (a crash, an expired drain): at most 2 x max_pending; none after a clean stop
  (exit 0, drain finished) of one that left nothing beyond its cursor. Copies repeated
  within one incarnation are retries of sends whose acknowledgement was lost: counted
  separately, the README bounds them by no number.
- Per-study order: the last copy of each event reaches the sink in its study's feed order.
- Caught up: the last incarnation left every cursor at the feed's latest sequence.

And per scenario: no canary secret and no traceback on the bridge's stderr, and no child
process (the feed's HTTP helper) outliving a killed or stopped bridge.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.chaos import routes
from tests.security.canaries import leaks

TRACEBACK = "Traceback (most recent call last)"

if TYPE_CHECKING:
    from tests.chaos.collect import Delivered
    from tests.chaos.harness import Harness, Incarnation


@dataclass
class SinkReport:
    sink: str
    admitted: int
    copies: int
    missing: int
    dead_lettered: int
    crash_duplicates: int
    retry_duplicates: int
    bound: int
    broken: int
    problems: list[str] = field(default_factory=list)


@dataclass
class Result:
    scenario: str
    entries: int = 0
    kills: int = 0
    seconds: float = 0.0
    sinks: dict[str, SinkReport] = field(default_factory=dict)
    pace: float | None = None  # the slowest healthy sink's rate during outages / undisturbed
    leaks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures worth showing, not verdicts
    skipped: str | None = None

    @property
    def violations(self) -> list[str]:
        found = list(self.problems)
        found += [f"secret leaked on stderr: {name}" for name in self.leaks]
        for report in self.sinks.values():
            found += [f"{report.sink}: {problem}" for problem in report.problems]
        return found

    @property
    def ok(self) -> bool:
        return self.skipped is not None or not self.violations


def verify(harness: Harness, result: Result) -> Result:
    """Check every invariant over what the harness's sinks hold; fills `result`."""
    truth = harness.truth()
    incarnations = harness.incarnations
    result.entries = len(truth)
    result.kills = sum(1 for i in incarnations if i.how == "kill")
    stderr = harness.stderr()
    result.leaks = leaks(stderr)
    if TRACEBACK in stderr:
        result.problems.append("a traceback on stderr (errors must be one line)")
    for incarnation in incarnations:
        if incarnation.orphans:
            result.problems.append(
                f"incarnation {incarnation.number} ({incarnation.how}) left child processes "
                f"running: {incarnation.orphans}"
            )
    deliveries = harness.deliveries()
    for sink in routes.SINKS:
        result.sinks[sink] = check_sink(
            sink, deliveries[sink], truth, incarnations, harness.tuning.max_pending
        )
    return result


def check_sink(
    sink: str,
    delivered: Delivered,
    truth: list[dict[str, Any]],
    incarnations: list[Incarnation],
    max_pending: int,
) -> SinkReport:
    admitted = [e["sequence"] for e in truth if routes.admitted(e, sink)]
    sets: list[set[int]] = [set() for _ in incarnations] or [set()]
    counts = [0] * len(sets)
    for sequence, incarnation in delivered.copies:
        sets[incarnation].add(sequence)
        counts[incarnation] += 1
    handled = set().union(*sets) | delivered.dead_lettered
    report = SinkReport(
        sink=sink,
        admitted=len(admitted),
        copies=len(delivered.copies),
        missing=sum(1 for sequence in admitted if sequence not in handled),
        dead_lettered=len(delivered.dead_lettered),
        crash_duplicates=0,
        retry_duplicates=sum(count - len(found) for count, found in zip(counts, sets, strict=True)),
        bound=0,
        broken=delivered.broken,
    )
    problems = report.problems
    if report.missing:
        first = [s for s in admitted if s not in handled][:5]
        problems.append(f"{report.missing} admitted entries missing (first: {first})")
    if report.dead_lettered:
        problems.append(f"{report.dead_lettered} entries dead-lettered")
    if unexpected := set().union(*sets) - set(admitted):
        problems.append(f"{len(unexpected)} entries its filter leaves out were delivered")

    before: set[int] = set(delivered.dead_lettered)
    for number, found in enumerate(sets):
        if number:
            problems += _redelivery_problems(
                report,
                number,
                found,
                before,
                incarnations[number - 1].cursors.get(sink, 0),
                max_pending,
            )
        before |= found
        if number < len(incarnations) and incarnations[number].how:
            problems += _cursor_problems(incarnations[number], sink, admitted, before, found)

    kills = sum(1 for i in incarnations if i.how == "kill")
    if report.broken > kills:
        problems.append(f"{report.broken} broken lines, more than the {kills} SIGKILLs")
    study_of = {e["sequence"]: e["studyInstanceUid"] for e in truth}
    if disorder := out_of_study_order(delivered.copies, study_of):
        problems.append(f"{len(disorder)} events out of study order (first: {disorder[:5]})")
    if incarnations and incarnations[-1].how:
        final = incarnations[-1].cursors.get(sink)
        if truth and final != truth[-1]["sequence"]:
            problems.append(f"final cursor {final}, feed latest {truth[-1]['sequence']}")
    return report


def _redelivery_problems(
    report: SinkReport,
    number: int,
    found: set[int],
    before: set[int],
    start: int,
    max_pending: int,
) -> list[str]:
    """Incarnation `number` resumed after the cursor `start`: it may deliver again only
    entries beyond it, which earlier incarnations had delivered without committing them
    (at most 2 x max_pending; none when there are none, e.g. after a clean stop)."""
    again = found & before
    report.crash_duplicates += len(again)
    allowed = 2 * max_pending if any(s > start for s in before) else 0
    report.bound += allowed
    problems = []
    if below := sorted(s for s in again if s <= start):
        problems.append(
            f"incarnation {number} re-delivered {len(below)} entries at or below the cursor "
            f"it started from, {start} (first: {below[:5]})"
        )
    if len(again) > allowed:
        problems.append(f"incarnation {number} re-delivered {len(again)} entries (bound {allowed})")
    return problems


def _cursor_problems(
    incarnation: Incarnation, sink: str, admitted: list[int], delivered: set[int], own: set[int]
) -> list[str]:
    """The cursor `incarnation` left must not be ahead of what the sink holds (`delivered`
    by it and its predecessors), and after a clean stop nothing it delivered (`own`) may
    lie beyond it: the cursor is exactly what was delivered."""
    cursor = incarnation.cursors.get(sink, 0)
    problems = []
    gaps = [s for s in admitted[: bisect_right(admitted, cursor)] if s not in delivered]
    if gaps:
        problems.append(
            f"cursor {cursor} ahead of the sink when incarnation {incarnation.number} ended "
            f"({incarnation.how}): {len(gaps)} entries at or below it not delivered "
            f"(first: {gaps[:5]})"
        )
    beyond = sorted(s for s in own if s > cursor)
    if incarnation.clean and beyond:
        problems.append(
            f"incarnation {incarnation.number} stopped cleanly at cursor {cursor} but had "
            f"delivered {len(beyond)} entries beyond it (first: {beyond[:5]})"
        )
    return problems


def out_of_study_order(copies: list[tuple[int, int]], study_of: dict[int, str]) -> list[int]:
    """Sequences whose last copy arrived after the last copy of a later event of their
    study."""
    last: dict[int, int] = {}
    for position, (sequence, _) in enumerate(copies):
        last[sequence] = position
    highest: dict[str, int] = {}
    disorder = []
    for sequence in sorted(last, key=last.__getitem__):
        study = study_of.get(sequence, "")
        if highest.get(study, -1) > sequence:
            disorder.append(sequence)
        highest[study] = max(highest.get(study, -1), sequence)
    return disorder
