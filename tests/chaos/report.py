"""The summary table of a chaos run (Markdown, so it reads the same in a terminal and in
tests/chaos/README.md), and the details of whatever failed."""

from __future__ import annotations

from tests.chaos.invariants import Result, SinkReport
from tests.chaos.routes import SINKS

LEGEND = (
    "Per sink: missing entries / re-deliveries after crashes + repeats within one "
    "incarnation (lost acknowledgements) <= the README's bound (2 x max_pending per crash). "
    "Pace: the slowest healthy sink's rate while another was down, over its undisturbed rate."
)


def table(results: list[Result]) -> str:
    header = ["scenario", "entries", "kills", *SINKS, "pace", "leaks", "verdict", "time"]
    rows = [header, ["---"] * len(header)]
    for result in results:
        rows.append(
            [
                result.scenario,
                f"{result.entries:,}",
                str(result.kills),
                *(_cell(result.sinks.get(sink)) for sink in SINKS),
                "-" if result.pace is None else f"{result.pace:.2f}",
                ", ".join(result.leaks) or "0",
                _verdict(result),
                f"{result.seconds:.0f}s",
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "| " + " | ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join([*lines, "", LEGEND])


def details(results: list[Result]) -> str:
    """Each scenario's notes and violations, one line each."""
    lines = []
    for result in results:
        for note in result.notes:
            lines.append(f"{result.scenario}: {note}")
        if result.skipped:
            lines.append(f"{result.scenario}: skipped: {result.skipped}")
        for violation in result.violations:
            lines.append(f"{result.scenario}: VIOLATION: {violation}")
    return "\n".join(lines)


def _cell(report: SinkReport | None) -> str:
    if report is None:
        return "-"
    duplicates = f"{report.crash_duplicates:,}+{report.retry_duplicates:,}"
    return f"{report.missing:,} / {duplicates} <= {report.bound:,}"


def _verdict(result: Result) -> str:
    if result.skipped:
        return "skipped"
    return "ok" if result.ok else "FAIL"
