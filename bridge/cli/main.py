"""`dicom-bridge`: parse the command line, set up logging, run the command.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. Errors print as one line
each on stderr; `--debug` adds the traceback (secrets masked).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from bridge.cli.options import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from bridge.cli.parser import build_parser
from bridge.core.redact import scrub
from bridge.runtime.logs import report, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "deadline", None) is not None and not args.exit_when_caught_up:
        parser.error("--deadline needs --exit-when-caught-up")
    setup_logging(args.log_level, args.log_format)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
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
