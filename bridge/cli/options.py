"""What the commands share: exit codes, reading the config (a problem is a usage error,
exit 2) and the options every command that reads it takes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from sinks import SinkConfig

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 141  # 128 + SIGPIPE: stdout closed before the output ended, as `head` does


class UsageError(Exception):
    """Bad invocation or config: exit 2; each line of the message is one problem, printed
    after `what` (`error`, `config error`)."""

    def __init__(self, message: str, what: str = "error") -> None:
        super().__init__(message)
        self.what = what


def load(path: Path) -> BridgeConfig:
    from bridge.config import ConfigError, load_config  # imports every sink's config model

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc), "config error") from None


def route(config: BridgeConfig, name: str) -> SinkConfig:
    """The sink (route) `--sink` names; a usage error (exit 2) naming those there are."""
    try:
        return config.route(name)
    except ValueError as exc:
        raise UsageError(f"--sink: {exc}") from None


def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="YAML config file"
    )


def duration(text: str) -> float:
    """An argparse type: `10m`, `30s`... in seconds."""
    from bridge.core.configspec import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sequence(minimum: int) -> Callable[[str], int]:
    """An argparse type: a sequence number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a sequence number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse
