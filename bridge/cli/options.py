"""What the commands share: exit codes, reading the config (a problem is a usage error,
exit 2) and the options every command that reads it takes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.config import BridgeConfig

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad invocation or config: exit 2; each line of the message is one problem."""


def load(path: Path) -> BridgeConfig:
    from bridge.config import ConfigError, load_config  # imports every sink's config model

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


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
