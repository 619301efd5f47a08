"""`dicom-bridge`: parse the command line, set up logging, run the command.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 141 (128 + SIGPIPE) when
stdout was closed early (`dicom-bridge dlq show ... | head`: the rest is dropped quietly).
Errors print as one line each on stderr; `--debug` adds the traceback (secrets masked).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from bridge.cli.options import EXIT_FAILURE, EXIT_OK, EXIT_PIPE, EXIT_USAGE, UsageError
from bridge.cli.parser import build_parser
from bridge.core.redact import scrub
from bridge.runtime.logs import report, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.deadline is not None and not args.exit_when_caught_up:
        parser.error("--deadline needs --exit-when-caught-up")
    # Unset: INFO; the simulator's server is quieter (its requests are the feed's traffic).
    default = "WARNING" if args.command == "simulate" else "INFO"
    setup_logging(args.log_level or default, args.log_format)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except UsageError as exc:
        for line in str(exc).splitlines():
            report(f"{exc.what}: {line}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_PIPE
    except Exception as exc:
        if args.debug:
            sys.stderr.write(scrub(traceback.format_exc()))
            return EXIT_FAILURE
        message = " ".join(str(exc).split()) or type(exc).__name__
        report(f"error: {message}")
        return EXIT_FAILURE


def _discard_stdout() -> None:
    """The reader of stdout is gone (`| head`): send what Python still holds for it (and
    flushes at exit) nowhere, instead of a second BrokenPipeError at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
