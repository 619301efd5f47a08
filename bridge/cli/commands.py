"""What each command does, given its parsed arguments; returns the exit code. Each imports
what it needs when it runs: `simulate` and `--help` start without loading every sink.

Output about peers and errors passes through `bridge.core.redact.scrub`, so a peer echoing
our credentials is not repeated.
"""

from __future__ import annotations

import argparse
import sys

from bridge.cli.options import EXIT_FAILURE, EXIT_OK, load
from bridge.core.redact import scrub
from bridge.runtime.logs import report


def run(args: argparse.Namespace) -> int:
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import record_signals, run_async, run_pipeline

    early_stop = record_signals()
    config = load(args.config)
    with state_lock(config, "run"):
        return run_async(
            run_pipeline(
                config,
                exit_when_caught_up=args.exit_when_caught_up,
                deadline=args.deadline,
                stop_requested=early_stop,
            )
        )


def check(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.runtime.app import run_async

    probes = run_async(ops.check(load(args.config)))
    for probe in probes:
        print(scrub(f"{'ok  ' if probe.ok else 'FAIL'} {probe.component}: {probe.detail}"))
    return EXIT_OK if all(probe.ok for probe in probes) else EXIT_FAILURE


def offsets_show(args: argparse.Namespace) -> int:
    import orjson

    from bridge import ops
    from bridge.runtime.app import run_async

    rows, problem = run_async(ops.show_offsets(load(args.config)))
    problem = problem and scrub(problem)
    if args.json:
        print(
            orjson.dumps(
                {"sinks": ops.as_dicts(rows), "latest_error": problem}, option=orjson.OPT_INDENT_2
            ).decode()
        )
        return EXIT_OK
    print(f"{'SINK':<24} {'CURSOR':>12} {'LATEST':>12} {'LAG':>12}  UPDATED")
    for row in rows:
        print(
            f"{row.sink:<24} {_number(row.sequence):>12} {_number(row.latest):>12} "
            f"{_number(row.lag):>12}  {row.updated_at or '-'}"
        )
    if problem:
        print(f"(feed latest unknown: {problem})", file=sys.stderr)
    return EXIT_OK


def offsets_set(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async

    config = load(args.config)
    with state_lock(config, "move a cursor"):
        print(run_async(ops.set_offset(config, args.sink, args.sequence)))
    return EXIT_OK


def offsets_reset(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async

    config = load(args.config)
    with state_lock(config, "move a cursor"):
        print(run_async(ops.reset_offset(config, args.sink, to_latest=args.to_latest)))
    return EXIT_OK


def replay(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.runtime.app import run_async

    result = run_async(ops.replay(load(args.config), args.sink, args.first, args.last))
    print(
        f"sink {args.sink}: replayed sequences {result.first}..{result.last}: "
        f"{result.delivered} delivered, {result.filtered} filtered out, "
        f"{result.dead_lettered} dead-lettered"
    )
    if result.failure:
        report(f"replay stopped: {result.failure}")
        return EXIT_FAILURE
    return EXIT_OK


def dlq_show(args: argparse.Namespace) -> int:
    from bridge import ops

    path = ops.dead_letter_path(load(args.config), args.sink)
    records = ops.read_records(path)
    for record in records:
        if args.json:
            print(record.line.decode(errors="replace"))
        elif record.value is None:
            print(f"{'?':>10}  (a line cut short by a crash)")
        else:
            value = record.value
            print(
                f"{_number(value.get('sequence')):>10}  {value.get('deadLetteredAt', '-')}  "
                f"{value.get('reason', '-')}"
            )
    if not args.json:
        print(f"{len(records)} dead-lettered record(s) in {path}", file=sys.stderr)
    return EXIT_OK


def dlq_redrive(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async

    config = load(args.config)
    with state_lock(config, "redrive dead letters"):
        result = run_async(ops.redrive(config, args.sink, args.timeout))
    print(
        f"sink {args.sink}: {result.delivered} re-sent, {result.remaining} left in the "
        f"dead-letter file ({result.unreadable} still unreadable)"
    )
    return EXIT_OK if result.remaining == result.unreadable else EXIT_FAILURE


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
