"""The command line's grammar: global options, commands and their options."""

from __future__ import annotations

import argparse

import bridge.cli.commands as commands
from bridge import __version__
from bridge.cli.options import config_option, duration


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
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = subcommands.add_parser("run", help="run every route until stopped (SIGTERM/SIGINT)")
    config_option(run)
    run.add_argument(
        "--exit-when-caught-up",
        action="store_true",
        help="exit 0 once every route delivered and committed everything up to "
        "the feed's latest entry (128 + the signal's number if stopped before)",
    )
    run.add_argument(
        "--deadline",
        type=duration,
        metavar="DURATION",
        help="with --exit-when-caught-up: exit 1 if not caught up within DURATION (e.g. 10m)",
    )
    run.set_defaults(handler=commands.run)

    check = subcommands.add_parser(
        "check", help="validate the config and probe the feed, offset store and sinks"
    )
    config_option(check)
    check.set_defaults(handler=commands.check)

    offsets = subcommands.add_parser("offsets", help="show or move the routes' cursors")
    actions = offsets.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="cursor, feed latest and lag per sink")
    config_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=commands.offsets_show)
    move = actions.add_parser(
        "set", help="move a cursor: the next entry delivered is the first after SEQUENCE"
    )
    config_option(move)
    move.add_argument("--sink", required=True, help="route (sink) name")
    move.add_argument("--sequence", required=True, type=int, help="last sequence to skip")
    move.set_defaults(handler=commands.offsets_set)
    reset = actions.add_parser(
        "reset", help="move a cursor to the beginning of the feed (or --to-latest)"
    )
    config_option(reset)
    reset.add_argument("--sink", required=True, help="route (sink) name")
    reset.add_argument(
        "--to-latest",
        action="store_true",
        help="skip everything up to the feed's latest entry instead",
    )
    reset.set_defaults(handler=commands.offsets_reset)
    export = actions.add_parser("export", help="every cursor of the store as JSON")
    config_option(export)
    export.add_argument("--output", "-o", help="file to write (default: stdout)")
    export.set_defaults(handler=commands.offsets_export)
    load_cursors = actions.add_parser(
        "import", help="write the cursors of an export into this config's store"
    )
    config_option(load_cursors)
    load_cursors.add_argument("--input", "-i", help="export to read (default: stdin)")
    load_cursors.add_argument(
        "--overwrite",
        action="store_true",
        help="replace cursors the store holds at another position",
    )
    load_cursors.set_defaults(handler=commands.offsets_import)

    replay = subcommands.add_parser(
        "replay", help="deliver a sequence range to one sink again (its cursor is untouched)"
    )
    config_option(replay)
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
    replay.set_defaults(handler=commands.replay)

    dlq = subcommands.add_parser("dlq", help="list or re-send dead-lettered events")
    dlq_actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    dlq_show = dlq_actions.add_parser("show", help="the dead-lettered events and their reasons")
    config_option(dlq_show)
    dlq_show.add_argument("--sink", required=True, help="route (sink) name")
    dlq_show.add_argument("--json", action="store_true", help="print the records as JSON Lines")
    dlq_show.set_defaults(handler=commands.dlq_show)
    dlq_redrive = dlq_actions.add_parser(
        "redrive", help="send them again; remove each from the dead-letter file once delivered"
    )
    config_option(dlq_redrive)
    dlq_redrive.add_argument("--sink", required=True, help="route (sink) name")
    dlq_redrive.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up retrying after this many seconds (default 60)",
    )
    dlq_redrive.set_defaults(handler=commands.dlq_redrive)

    from bridge.simulator import cli as simulator_cli

    simulate = subcommands.add_parser(
        "simulate", help="serve the change-feed simulator (v1, v2, latest) with fault knobs"
    )
    simulator_cli.configure_parser(simulate)
    simulate.set_defaults(handler=simulator_cli.run)

    import bridge.cli.demo as demo

    demo_parser = subcommands.add_parser(
        "demo", help="start the simulator and run the bridge on config/quickstart.yaml"
    )
    demo.configure_parser(demo_parser)
    demo_parser.set_defaults(handler=demo.run)
    return parser
