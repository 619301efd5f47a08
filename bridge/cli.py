"""Command line entry point `dicom-bridge` (DESIGN.md §4).

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. Errors print as one line
each on stderr; `--debug` adds the traceback. Everything printed about peers and errors
passes through `bridge.redact.scrub`, so a peer echoing our credentials is not repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import traceback
from pathlib import Path

import orjson

from bridge import __version__
from bridge.logs import JsonFormatter, setup_logging
from bridge.redact import scrub

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad invocation or config: exit 2; each line of the message is one problem."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicom-bridge",
        description="Forward the DICOM change feed to Kafka, Service Bus, webhooks and files, "
        "at least once, with one durable cursor per sink.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (default) or one JSON object per line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run every route until stopped (SIGTERM/SIGINT)")
    _config_option(run)
    run.add_argument(
        "--exit-when-caught-up",
        action="store_true",
        help="exit 0 once every route delivered and committed everything up to "
        "the feed's latest entry (128 + the signal's number if stopped before)",
    )
    run.add_argument(
        "--deadline",
        type=_duration,
        metavar="DURATION",
        help="with --exit-when-caught-up: exit 1 if not caught up within DURATION (e.g. 10m)",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check", help="validate the config and probe the feed, offset store and sinks"
    )
    _config_option(check)
    check.set_defaults(handler=_check)

    offsets = commands.add_parser("offsets", help="show or move the routes' cursors")
    actions = offsets.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="cursor, feed latest and lag per sink")
    _config_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_offsets_show)
    move = actions.add_parser(
        "set", help="move a cursor: the next entry delivered is the first after SEQUENCE"
    )
    _config_option(move)
    move.add_argument("--sink", required=True, help="route (sink) name")
    move.add_argument("--sequence", required=True, type=int, help="last sequence to skip")
    move.set_defaults(handler=_offsets_set)
    reset = actions.add_parser(
        "reset", help="move a cursor to the beginning of the feed (or --to-latest)"
    )
    _config_option(reset)
    reset.add_argument("--sink", required=True, help="route (sink) name")
    reset.add_argument(
        "--to-latest",
        action="store_true",
        help="skip everything up to the feed's latest entry instead",
    )
    reset.set_defaults(handler=_offsets_reset)

    replay = commands.add_parser(
        "replay", help="deliver a sequence range to one sink again (its cursor is untouched)"
    )
    _config_option(replay)
    replay.add_argument("--sink", required=True, help="route (sink) name")
    replay.add_argument(
        "--from",
        dest="first",
        required=True,
        type=int,
        metavar="SEQ",
        help="first sequence to deliver",
    )
    replay.add_argument(
        "--to",
        dest="last",
        type=int,
        metavar="SEQ",
        help="last sequence to deliver (default: the feed's latest)",
    )
    replay.set_defaults(handler=_replay)

    dlq = commands.add_parser("dlq", help="list or re-send dead-lettered events")
    dlq_actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    dlq_show = dlq_actions.add_parser("show", help="the dead-lettered events and their reasons")
    _config_option(dlq_show)
    dlq_show.add_argument("--sink", required=True, help="route (sink) name")
    dlq_show.add_argument("--json", action="store_true", help="print the records as JSON Lines")
    dlq_show.set_defaults(handler=_dlq_show)
    dlq_redrive = dlq_actions.add_parser(
        "redrive", help="send them again; remove each from the dead-letter file once delivered"
    )
    _config_option(dlq_redrive)
    dlq_redrive.add_argument("--sink", required=True, help="route (sink) name")
    dlq_redrive.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up retrying after this many seconds (default 60)",
    )
    dlq_redrive.set_defaults(handler=_dlq_redrive)

    from bridge.simulator import cli as simulator_cli

    simulate = commands.add_parser(
        "simulate", help="serve the change-feed simulator (v1, v2, latest) with fault knobs"
    )
    simulator_cli.configure_parser(simulate)
    simulate.set_defaults(handler=simulator_cli.run)

    from bridge import demo

    demo_parser = commands.add_parser(
        "demo", help="start the simulator and run the bridge on config/quickstart.yaml"
    )
    demo.configure_parser(demo_parser)
    demo_parser.set_defaults(handler=demo.run)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="YAML config file"
    )


def _duration(text: str) -> float:
    from bridge.config_types import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load(path: Path):
    from bridge.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from bridge.lock import state_lock

    early_stop = _record_signals()
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


def _record_signals() -> list[int]:
    """Until the event loop takes the signals over, SIGTERM would kill the bridge with the
    default action (exit -15) and SIGINT raise KeyboardInterrupt while it imports sinks,
    reads its config and connects: record them instead, and the pipeline stops as soon as
    it starts, with the exit status of a stop by that signal."""
    received: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: received.append(signum))
    return received


async def run_pipeline(
    config,
    *,
    exit_when_caught_up: bool = False,
    deadline: float | None = None,
    progress: bool = True,
    stop_requested: list[int] | None = None,
) -> int:
    from bridge.pipeline import Pipeline
    from bridge.progress import Progress

    # Entries, events and their slots are short-lived and free of cycles, yet each page
    # allocates thousands of them: the default collector thresholds would scan the
    # long-lived heap (modules, config) over and over. Freeze what exists now and collect
    # the young generation less often (about 5% of catch-up CPU).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

    pipeline = Pipeline(config)
    pipeline.install_signal_handlers()
    if stop_requested:
        pipeline.request_stop(stop_requested[0])
    display = None
    if progress and Progress.wanted():
        display = asyncio.create_task(Progress(pipeline.routes).run())
    try:
        return await pipeline.run(exit_when_caught_up=exit_when_caught_up, deadline=deadline)
    finally:
        if display is not None:
            display.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await display
        for route in pipeline.routes:
            if route.failure:
                report(f"sink {route.name} stopped: {route.failure}")
        behind = [route for route in pipeline.behind if route.running]  # not stopped
        if exit_when_caught_up and behind and (pipeline.deadline_passed or pipeline.interrupted_by):
            why = f"deadline {deadline:g}s passed" if pipeline.deadline_passed else "interrupted"
            report(f"{why} before every route caught up: {_positions(behind)}")
        # A fatal error (the offset store failing) reaches every route: report it once.
        for fatal in dict.fromkeys(str(route.fatal) for route in pipeline.routes if route.fatal):
            report(f"error: {fatal}")


def _positions(routes: list) -> str:
    from bridge.progress import sequence_of

    return ", ".join(
        f"sink {route.name} at sequence {sequence_of(route.committed_position):,} of "
        f"{route.latest:,}"
        for route in routes
    )


def _check(args: argparse.Namespace) -> int:
    from bridge.admin import check

    probes = run_async(check(load(args.config)))
    for probe in probes:
        print(scrub(f"{'ok  ' if probe.ok else 'FAIL'} {probe.component}: {probe.detail}"))
    return EXIT_OK if all(probe.ok for probe in probes) else EXIT_FAILURE


def _offsets_show(args: argparse.Namespace) -> int:
    from bridge.admin import as_dicts, offsets_show

    rows, problem = run_async(offsets_show(load(args.config)))
    problem = problem and scrub(problem)
    if args.json:
        print(
            orjson.dumps(
                {"sinks": as_dicts(rows), "latest_error": problem}, option=orjson.OPT_INDENT_2
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


def _offsets_set(args: argparse.Namespace) -> int:
    from bridge.admin import offsets_set
    from bridge.lock import state_lock

    config = load(args.config)
    with state_lock(config, "move a cursor"):
        print(run_async(offsets_set(config, args.sink, args.sequence)))
    return EXIT_OK


def _offsets_reset(args: argparse.Namespace) -> int:
    from bridge.admin import offsets_reset
    from bridge.lock import state_lock

    config = load(args.config)
    with state_lock(config, "move a cursor"):
        print(run_async(offsets_reset(config, args.sink, to_latest=args.to_latest)))
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from bridge.replay import replay

    result = run_async(replay(load(args.config), args.sink, args.first, args.last))
    print(
        f"sink {args.sink}: replayed sequences {result.first}..{result.last}: "
        f"{result.delivered} delivered, {result.filtered} filtered out, "
        f"{result.dead_lettered} dead-lettered"
    )
    if result.failure:
        report(f"replay stopped: {result.failure}")
        return EXIT_FAILURE
    return EXIT_OK


def _dlq_show(args: argparse.Namespace) -> int:
    from bridge.dlq import dead_letter_path, read_records

    path = dead_letter_path(load(args.config), args.sink)
    records = read_records(path)
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


def _dlq_redrive(args: argparse.Namespace) -> int:
    from bridge.dlq import redrive
    from bridge.lock import state_lock

    config = load(args.config)
    with state_lock(config, "redrive dead letters"):
        result = run_async(redrive(config, args.sink, args.timeout))
    print(
        f"sink {args.sink}: {result.delivered} re-sent, {result.remaining} left in the "
        f"dead-letter file ({result.unreadable} still unreadable)"
    )
    return EXIT_OK if result.remaining == result.unreadable else EXIT_FAILURE


def run_async(coroutine):
    """Run on uvloop where it is installed (about a fifth less CPU per page than the
    default loop), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def report(line: str) -> None:
    """An error for the operator: `dicom-bridge: <line>` on stderr, or a JSON log record
    when logs are JSON (so every stderr line parses)."""
    if isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter):
        logging.getLogger("bridge.cli").error(line)
    else:
        print(scrub(f"dicom-bridge: {line}"), file=sys.stderr)


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "deadline", None) is not None and not args.exit_when_caught_up:
        parser.error("--deadline needs --exit-when-caught-up")
    setup_logging(args.log_level, args.log_format)
    try:
        return args.handler(args)
    except UsageError as exc:
        for line in str(exc).splitlines():
            report(f"config error: {line}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            sys.stderr.write(scrub(traceback.format_exc()))
            return EXIT_FAILURE
        message = " ".join(str(exc).split()) or type(exc).__name__
        report(f"error: {message}")
        return EXIT_FAILURE
