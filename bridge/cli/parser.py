"""The command line's grammar: global options, commands and their options.

The global options (`--version`, `--debug`, `--log-level`, `--log-format`) are accepted
before and after the command: every parser takes them, the commands' copies without a
default so that one given before the command is not overwritten. Choices are
case-insensitive.
"""

from __future__ import annotations

import argparse
from typing import Any

import bridge.cli.commands as commands
from bridge import __version__
from bridge.cli.completion import print_completion
from bridge.cli.options import config_option, duration, sequence

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def global_options(parser: argparse.ArgumentParser, *, root: bool, log_level: bool = True) -> None:
    """`--version`, `--debug`, `--log-level`, `--log-format` on `parser`; the root parser
    holds the defaults, the commands' copies leave them alone when not given."""
    unset: Any = argparse.SUPPRESS
    parser.add_argument(
        "--version",
        action="version",
        version=f"dicom-bridge {__version__}",
        help="print the version",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if root else unset,
        help="show tracebacks on errors",
    )
    if log_level:
        parser.add_argument(
            "--log-level",
            default=None if root else unset,  # None: INFO
            type=str.upper,
            choices=LOG_LEVELS,
            help="DEBUG, INFO (default), WARNING or ERROR (any case)",
        )
    parser.add_argument(
        "--log-format",
        default="text" if root else unset,
        type=str.lower,
        choices=["text", "json"],
        help="text (default) or one JSON object per line",
    )


class _Commands:
    """Adds commands (and their actions) that take the global options too."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def add(self, name: str, *, log_level: bool = True, **options: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, **options)
        global_options(parser, root=False, log_level=log_level)
        return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicom-bridge",
        description="Forward the DICOM change feed to Kafka, Service Bus, RabbitMQ, NATS "
        "JetStream, Redis Streams, webhooks and files, at least once, with one durable cursor "
        "per sink.",
    )
    global_options(parser, root=True)
    subcommands = _Commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))

    run = subcommands.add("run", help="run every route until stopped (SIGTERM/SIGINT)")
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

    check = subcommands.add(
        "check", help="validate the config and probe the feed, offset store and sinks"
    )
    config_option(check)
    check.add_argument(
        "--json", action="store_true", help="print {ok, components: [{component, ok, detail}]}"
    )
    check.set_defaults(handler=commands.check)

    offsets = subcommands.add("offsets", help="show or move the routes' cursors")
    actions = _Commands(offsets.add_subparsers(dest="action", metavar="ACTION", required=True))
    show = actions.add("show", help="cursor, feed latest and lag per sink")
    config_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=commands.offsets_show)
    move = actions.add(
        "set", help="move a cursor: the next entry delivered is the first after SEQUENCE"
    )
    config_option(move)
    move.add_argument("--sink", required=True, help="route (sink) name")
    move.add_argument("--sequence", required=True, type=sequence(0), help="last sequence to skip")
    move.add_argument(
        "--force",
        action="store_true",
        help="set it even past the feed's latest sequence (refused otherwise)",
    )
    move.set_defaults(handler=commands.offsets_set)
    reset = actions.add("reset", help="move a cursor to the beginning of the feed (or --to-latest)")
    config_option(reset)
    reset.add_argument("--sink", required=True, help="route (sink) name")
    reset.add_argument(
        "--to-latest",
        action="store_true",
        help="skip everything up to the feed's latest entry instead",
    )
    reset.set_defaults(handler=commands.offsets_reset)
    export = actions.add("export", help="every cursor of the store as JSON")
    config_option(export)
    export.add_argument("--output", "-o", help="file to write (default: stdout)")
    export.set_defaults(handler=commands.offsets_export)
    load_cursors = actions.add(
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

    replay = subcommands.add(
        "replay", help="deliver a sequence range to one sink again (its cursor is untouched)"
    )
    config_option(replay)
    replay.add_argument("--sink", required=True, help="route (sink) name")
    replay.add_argument(
        "--from",
        dest="first",
        required=True,
        type=sequence(1),
        metavar="SEQ",
        help="first sequence to deliver",
    )
    replay.add_argument(
        "--to",
        dest="last",
        type=sequence(1),
        metavar="SEQ",
        help="last sequence to deliver (default: the feed's latest)",
    )
    replay.set_defaults(handler=commands.replay)

    dlq = subcommands.add("dlq", help="list or re-send dead-lettered events")
    dlq_actions = _Commands(dlq.add_subparsers(dest="action", metavar="ACTION", required=True))
    dlq_show = dlq_actions.add("show", help="the dead-lettered events and their reasons")
    config_option(dlq_show)
    dlq_show.add_argument("--sink", required=True, help="route (sink) name")
    dlq_show.add_argument("--json", action="store_true", help="print the records as JSON Lines")
    dlq_show.set_defaults(handler=commands.dlq_show)
    dlq_redrive = dlq_actions.add(
        "redrive", help="send them again; remove each from the dead-letter file once delivered"
    )
    config_option(dlq_redrive)
    dlq_redrive.add_argument("--sink", required=True, help="route (sink) name")
    dlq_redrive.add_argument(
        "--deadline",
        "--timeout",  # its former name
        dest="deadline",
        type=duration,
        default=600.0,
        metavar="DURATION",
        help="start no send after DURATION (default 10m): what is left stays in the file, "
        "the output says how many; exit 1",
    )
    dlq_redrive.set_defaults(handler=commands.dlq_redrive)

    from bridge.simulator import cli as simulator_cli

    simulate = subcommands.add(
        "simulate",
        log_level=False,  # its own --log-level (the server's), the same option
        help="serve the change-feed simulator (v1, v2, latest) with fault knobs",
    )
    simulator_cli.configure_parser(simulate, log_level=argparse.SUPPRESS)
    simulate.set_defaults(handler=simulator_cli.run)

    import bridge.cli.demo as demo

    demo_parser = subcommands.add(
        "demo", help="start the simulator and run the bridge on config/quickstart.yaml"
    )
    demo.configure_parser(demo_parser)
    demo_parser.set_defaults(handler=demo.run)

    shells = subcommands.add(
        "completion",
        help="print the shell completion script: `source <(dicom-bridge completion bash)` (or zsh)",
    )
    shells.add_argument("shell", choices=["bash", "zsh"], type=str.lower)
    shells.set_defaults(handler=lambda args: print_completion(parser, args.shell))

    schema = subcommands.add(
        "schema", help="print the JSON Schema of the config file (for editors)"
    )
    schema.set_defaults(handler=commands.schema)
    return parser
