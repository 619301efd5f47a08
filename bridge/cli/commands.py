"""What each command does, given its parsed arguments; returns the exit code. Each imports
what it needs when it runs: `simulate` and `--help` start without loading every sink.

Output about peers and errors passes through `bridge.core.redact.scrub`, so a peer echoing
our credentials is not repeated.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from bridge.cli.options import EXIT_FAILURE, EXIT_OK, UsageError, load, route
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
    import orjson

    from bridge import ops
    from bridge.runtime.app import run_async

    probes = run_async(ops.check(load(args.config)))
    ok = all(probe.ok for probe in probes)
    if args.json:
        components = [
            {"component": p.component, "ok": p.ok, "detail": scrub(p.detail)} for p in probes
        ]
        document = {"ok": ok, "components": components}
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        for probe in probes:
            print(scrub(f"{'ok  ' if probe.ok else 'FAIL'} {probe.component}: {probe.detail}"))
    return EXIT_OK if ok else EXIT_FAILURE


def offsets_show(args: argparse.Namespace) -> int:
    import orjson

    from bridge import ops
    from bridge.runtime.app import run_async

    config = load(args.config)
    rows, problem = run_async(ops.show_offsets(config))
    lease = run_async(ops.lease_of(config)) if config.ha is not None else None
    problem = problem and scrub(problem)
    if args.json:
        shown: dict[str, object] = {"sinks": ops.as_dicts(rows), "latest_error": problem}
        if lease is not None:
            shown["lease"] = _lease(lease) | {"expires_at": lease.expires_at.isoformat()}
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    if lease is not None:
        print(
            f"lease of feed {lease.feed}: {lease.owner} (epoch {lease.epoch}), "
            f"{_lease(lease)['state']} {lease.expires_at.isoformat()}"
        )
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
    route(config, args.sink)
    with state_lock(config, "move a cursor"), _usage(ops.OutOfRange):
        print(run_async(ops.set_offset(config, args.sink, args.sequence, force=args.force)))
    return EXIT_OK


def offsets_reset(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async

    config = load(args.config)
    route(config, args.sink)
    with state_lock(config, "move a cursor"):
        print(run_async(ops.reset_offset(config, args.sink, to_latest=args.to_latest)))
    return EXIT_OK


def offsets_export(args: argparse.Namespace) -> int:
    import orjson

    from bridge import ops
    from bridge.runtime.app import run_async

    document = run_async(ops.export_offsets(load(args.config)))
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
        print(f"exported {len(document['cursors'])} cursor(s) to {args.output}", file=sys.stderr)
    return EXIT_OK


def offsets_import(args: argparse.Namespace) -> int:
    import orjson

    from bridge import ops
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async

    config = load(args.config)
    try:
        if args.input in (None, "-"):
            data = sys.stdin.buffer.read()
        else:
            with open(args.input, "rb") as file:
                data = file.read()
        rows = ops.parse_export(orjson.loads(data))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the export {args.input or '-'}: {exc}") from None
    with state_lock(config, "import cursors"):
        print(run_async(ops.import_offsets(config, rows, overwrite=args.overwrite)))
    return EXIT_OK


def replay(args: argparse.Namespace) -> int:
    from bridge import ops
    from bridge.runtime.app import run_async

    config = load(args.config)
    route(config, args.sink)
    if args.last is not None and args.last < args.first:
        raise UsageError(f"--to {args.last} is before --from {args.first}")
    with _usage(ops.OutOfRange):
        result = run_async(ops.replay(config, args.sink, args.first, args.last))
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

    config = load(args.config)
    route(config, args.sink)
    path = ops.dead_letter_path(config, args.sink)
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
    route(config, args.sink)
    with state_lock(config, "redrive dead letters"):
        result = run_async(ops.redrive(config, args.sink, args.deadline))
    print(
        f"sink {args.sink}: {result.delivered} re-sent, {result.remaining} left in the "
        f"dead-letter file ({result.unreadable} still unreadable)"
    )
    if result.deadline_passed:
        report(
            f"--deadline {args.deadline:g}s passed: {result.remaining - result.unreadable} "
            f"event(s) left in the file ({result.untried} not sent at all); run `dlq redrive` "
            "again to continue, or give it a longer --deadline"
        )
    return EXIT_OK if result.remaining == result.unreadable else EXIT_FAILURE


def _lease(lease: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    state = "expires" if lease.expires_at > datetime.now(UTC) else "expired"
    return {"feed": lease.feed, "owner": lease.owner, "epoch": lease.epoch, "state": state}


def schema(args: argparse.Namespace) -> int:
    from bridge.config.schema import schema_text

    print(schema_text(), end="")
    return EXIT_OK


@contextlib.contextmanager
def _usage(*errors: type[Exception]) -> Iterator[None]:
    """These errors of the work are the operator's arguments': a usage error (exit 2)."""
    try:
        yield
    except errors as exc:
        raise UsageError(str(exc)) from None


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
