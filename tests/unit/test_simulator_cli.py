"""The `simulate` command line: option parsing and refusals."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bridge.simulator import cli
from bridge.simulator.process import cli_arguments


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dicom-bridge")
    commands = root.add_subparsers(dest="command", required=True)
    cli.configure_parser(commands.add_parser("simulate"))
    return root


def test_options_as_dicom_bridge_simulate_parses_them() -> None:
    args = parser().parse_args(
        ["simulate", "--port", "0", "--entries", "5", "--file-path", "--rate-429", "0.5"]
    )
    assert (args.host, args.port, args.entries, args.file_path) == ("127.0.0.1", 0, 5, True)
    assert (args.rate_429, args.retry_after, args.token, args.fault_seed) == (0.5, 1, None, None)
    assert (args.gap_rate, args.max_gap, args.reorder_rate) == (0.001, 10, 0.01)


@pytest.mark.parametrize(
    "arguments", [["--rate-429", "1.5"], ["--entries", "-1"], ["--port", "x"], ["--max-gap", "0"]]
)
def test_out_of_range_options_are_usage_errors(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["simulate", *arguments])
    assert exit_.value.code == 2


def test_inconsistent_options_exit_2_before_serving() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.simulator",
            "--port",
            "0",
            "--rate-500",
            "0.7",
            "--rate-503",
            "0.7",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "rate_429 + rate_500 + rate_503 must not exceed 1" in result.stderr


def test_keyword_options_become_flags() -> None:
    options = {"entries": 10, "file_path": True, "forbidden": False, "token": None, "rate_429": 0.5}
    assert cli_arguments(options) == ["--entries", "10", "--file-path", "--rate-429", "0.5"]
