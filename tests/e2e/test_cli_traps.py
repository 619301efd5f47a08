"""The command line without traps (issue 16): each trap a new user fell into, with its test.

Usage errors exit 2; global options before or after the command, in any case; `| head`
without a traceback; `replay --from` and `offsets set` past the feed's end; a cursor of the
other `api_version`; `check` that changes nothing and reports every component; one file per
file sink; errors naming `offsets.path`; the HTTP helper's start failure; `dlq redrive` at a
route's pace with its deadline stated; completion; `--version` everywhere.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bridge.cli import main
from bridge.cli.completion import _walk
from bridge.cli.parser import build_parser
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from bridge.feed import FeedError
from bridge.feed._http import HelperFetcher
from tests.e2e.helpers import bridge_command, run_bridge, write_config
from tests.peers.webhook_receiver import WebhookReceiver

UNREACHABLE = "http://127.0.0.1:9"


def file_config(tmp_path: Path, url: str = UNREACHABLE, **top) -> Path:
    return write_config(
        tmp_path / "bridge.yaml",
        url,
        [
            {
                "name": "archive",
                "type": "file",
                "path": str(tmp_path / "out" / "events.jsonl"),
                "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
            }
        ],
        **top,
    )


# -- usage errors exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["run"],
        ["bogus"],
        ["--log-level", "loud", "run", "-c", "x"],
        ["offsets", "set", "-c", "x", "--sink", "a", "--sequence", "-3"],
        ["replay", "-c", "x", "--sink", "a", "--from", "zero"],
        ["completion", "fish"],
    ],
)
def test_usage_errors_exit_2(arguments, capsys):
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["offsets", "set", "--sequence", "1"],
        ["offsets", "reset"],
        ["replay", "--from", "1"],
        ["dlq", "show"],
        ["dlq", "redrive"],
    ],
)
def test_an_unknown_sink_is_a_usage_error(tmp_path, capsys, command):
    config = file_config(tmp_path)
    assert main([*command, "-c", str(config), "--sink", "nope"]) == 2
    assert "dicom-bridge: error: --sink: no sink named 'nope' in the config (sinks: archive)" in (
        capsys.readouterr().err
    )


def test_a_usage_error_from_a_real_process_exits_2():
    result = run_bridge("run")
    assert result.returncode == 2
    assert "the following arguments are required: -c/--config" in result.stderr


# -- global options ----------------------------------------------------------------------


@pytest.mark.parametrize("before", [True, False])
def test_global_options_work_before_and_after_the_command(tmp_path, capsys, before):
    missing = str(tmp_path / "missing.yaml")
    options = ["--log-format", "json", "--log-level", "debug"]
    arguments = [*options, "check", "-c", missing] if before else ["check", "-c", missing, *options]
    assert main(arguments) == 2
    line = json.loads(capsys.readouterr().err.splitlines()[-1])  # JSON: the option applied
    assert line["level"] == "error" and "missing.yaml" in line["message"]


def test_global_options_after_the_command_do_not_reset_those_before():
    args = build_parser().parse_args(["--log-format", "json", "--debug", "check", "-c", "x"])
    assert (args.log_format, args.debug, args.log_level) == ("json", True, None)
    args = build_parser().parse_args(["check", "-c", "x", "--debug", "--log-level", "error"])
    assert (args.log_format, args.debug, args.log_level) == ("text", True, "ERROR")


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Debug"])
def test_log_level_is_case_insensitive_everywhere(level):
    parse = build_parser().parse_args
    assert parse(["--log-level", level, "run", "-c", "x"]).log_level == "DEBUG"
    assert parse(["offsets", "show", "-c", "x", "--log-level", level]).log_level == "DEBUG"
    assert parse(["simulate", "--log-level", level]).log_level == "debug"
    assert parse(["--log-level", level, "simulate"]).log_level == "DEBUG"  # not overwritten
    assert parse(["simulate"]).log_level is None  # the simulator's default: warning


def test_version_in_every_commands_help(capsys):
    parsers = _walk(build_parser())
    assert len(parsers) >= 14
    for path, parser in parsers:
        assert "--version" in parser.format_help(), path
    with pytest.raises(SystemExit) as exited:
        main(["dlq", "redrive", "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("dicom-bridge ")


# -- stdout closed early -------------------------------------------------------------------


def test_dlq_show_into_head_ends_quietly(tmp_path):
    config = file_config(tmp_path)
    formatter = Formatter(UNREACHABLE)
    entry = {
        "sequence": 1,
        "studyInstanceUid": "1.2",
        "seriesInstanceUid": "1.2.3",
        "sopInstanceUid": "1.2.3.4",
        "action": "Create",
        "timestamp": "2024-01-01T00:00:00Z",
        "state": "Current",
    }
    record = formatter.dead_letter(formatter.event(parse_entry(entry)), "HTTP 400", "archive")
    (tmp_path / "dlq.jsonl").write_bytes((record.body + b"\n") * 20_000)
    command = " ".join(bridge_command("dlq", "show", "-c", str(config), "--sink", "archive"))
    for flags in ("", " --json"):
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{command}{flags} | head -n 2"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert len(result.stdout.splitlines()) == 2
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
        assert result.stderr == ""
        assert result.returncode == 141  # 128 + SIGPIPE, as other tools cut by head


# -- positions past the feed's end -----------------------------------------------------------


def test_replay_from_past_the_end_says_so_with_the_right_advice(simulator, tmp_path, capsys):
    sim = simulator(entries=30, seed=161)
    latest = sim.entries()[-1]["sequence"]
    config = file_config(tmp_path, sim.url)
    assert main(["replay", "-c", str(config), "--sink", "archive", "--from", "1000"]) == 2
    err = capsys.readouterr().err
    assert f"--from 1000 is past the feed's latest sequence {latest}: nothing to replay" in err
    assert "through `run`" in err and f"--from <= {latest}" in err
    assert not (tmp_path / "out").exists()


def test_offsets_set_past_latest_is_refused_unless_forced(simulator, tmp_path, capsys):
    sim = simulator(entries=30, seed=162)
    latest = sim.entries()[-1]["sequence"]
    config = file_config(tmp_path, sim.url)
    move = ["offsets", "set", "-c", str(config), "--sink", "archive"]
    assert main([*move, "--sequence", str(latest + 5)]) == 2
    err = capsys.readouterr().err
    assert f"--sequence {latest + 5} is past the feed's latest sequence {latest}" in err
    assert "--force" in err
    assert main([*move, "--sequence", str(latest)]) == 0
    assert main([*move, "--sequence", str(latest + 5), "--force"]) == 0
    assert f"cursor set to sequence {latest + 5}" in capsys.readouterr().out


def test_switching_api_version_with_a_stored_cursor_says_so_in_one_line(
    simulator, tmp_path, capsys
):
    sim = simulator(entries=30, seed=163)
    v1 = file_config(tmp_path, sim.url)
    assert main(["offsets", "set", "-c", str(v1), "--sink", "archive", "--sequence", "10"]) == 0
    v2 = file_config(tmp_path, sim.url, feed={"api_version": "v2"})
    capsys.readouterr()
    assert main(["run", "-c", str(v2), "--exit-when-caught-up", "--deadline", "60s"]) == 1
    err = capsys.readouterr().err
    assert "invalid literal" not in err
    assert (
        "sink archive: its cursor was stored with api_version v1, feed.api_version is v2 now: "
        "set feed.api_version back to v1, or move the cursor to the same entry for v2 with "
        "`dicom-bridge offsets set --sink archive --sequence 10`"
    ) in err


# -- check --------------------------------------------------------------------------------


def test_check_creates_nothing_and_reports_every_component(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("blocked").write_text("a file where a directory should be")
    Path("bridge.yaml").write_text(
        f"""
feed: {{url: "{UNREACHABLE}", timeout: 1s}}
offsets: {{path: state/offsets.db}}
sinks:
  - {{name: archive, type: file, path: out/events.jsonl,
      dead_letter: {{type: file, path: out/dlq.jsonl}}}}
  - {{name: broken, type: file, path: blocked/events.jsonl}}
  - {{name: screen, type: stdout}}
"""
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["check", "-c", "bridge.yaml", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no state/
    status = {c["component"]: c["ok"] for c in report["components"]}
    assert report["ok"] is False
    assert status == {
        "feed": False,
        "offsets": True,
        "sink archive": True,
        "sink archive dead_letter": True,
        "sink broken": False,
        "sink screen": True,
    }

    Path("bridge.yaml").write_text(
        Path("bridge.yaml").read_text().replace("state/offsets.db", "blocked/offsets.db")
    )
    assert main(["check", "-c", "bridge.yaml"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "FAIL feed",
        "FAIL offsets",
        "ok   sink archive",
        "ok   sink archive dead_letter",
        "FAIL sink broken",
        "ok   sink screen",
    ]
    assert "offsets.path blocked/offsets.db: blocked: Not a directory (ENOTDIR)" in lines[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_two_file_sinks_with_one_path_are_refused(tmp_path, capsys):
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"""
feed: {{url: "{UNREACHABLE}"}}
sinks:
  - {{name: a, type: file, path: out/events.jsonl}}
  - {{name: b, type: stdout, dead_letter: {{type: file, path: ./out/events.jsonl}}}}
"""
    )
    assert main(["check", "-c", str(config)]) == 2
    assert (
        "config error: sinks[1].dead_letter.path: out/events.jsonl is also written by "
        "sinks[0].path: each file sink needs a file of its own"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [["run"], ["offsets", "set", "--sink", "archive", "--sequence", "0"]]
)
def test_offsets_path_errors_name_offsets_path(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    Path("blocked").write_text("a file where a directory should be")
    config = file_config(tmp_path, offsets={"path": "blocked/offsets.db"})
    assert main([*command, "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "[Errno" not in err
    assert err.startswith("dicom-bridge: error: offsets.path blocked/offsets.db: ")


async def test_a_failed_start_of_the_http_helper_names_the_path_and_the_way_out(monkeypatch):
    async def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", sys.executable)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refused)
    fetcher = HelperFetcher(max_connections=1, timeout=1.0, max_bytes=1000)
    with pytest.raises(FeedError) as failed:
        await fetcher.get("http://127.0.0.1:9/v1/changefeed/latest", {})
    message = str(failed.value)
    assert sys.executable in message and "Permission denied (EACCES)" in message
    assert "`feed.http_helper: false`" in message


# -- dlq redrive ----------------------------------------------------------------------------


def dead_letters(tmp_path: Path, url: str, count: int) -> Path:
    formatter = Formatter(url)
    lines = []
    for sequence in range(1, count + 1):
        entry = {
            "sequence": sequence,
            "studyInstanceUid": f"1.2.{sequence % 40}",
            "seriesInstanceUid": f"1.2.{sequence % 40}.1",
            "sopInstanceUid": f"1.2.{sequence % 40}.1.{sequence}",
            "action": "Create",
            "timestamp": "2024-01-01T00:00:00Z",
            "state": "Current",
        }
        event = formatter.event(parse_entry(entry))
        lines.append(formatter.dead_letter(event, "HTTP 400: rejected", "hooks").body)
    path = tmp_path / "dlq.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def webhook_config(tmp_path: Path, url: str, **route) -> Path:
    return write_config(
        tmp_path / "bridge.yaml",
        UNREACHABLE,
        [
            {
                "name": "hooks",
                "type": "webhook",
                "url": url,
                "timeout": "2s",
                "retry": {"initial": "10ms", "max": "50ms"},
                "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl")},
                **route,
            }
        ],
    )


def test_dlq_redrive_sends_concurrently_like_a_route(tmp_path, capsys):
    with WebhookReceiver() as receiver:
        dlq = dead_letters(tmp_path, receiver.url, 400)
        # The first request of one study stalls until the sink's timeout: the other
        # studies' batches go meanwhile, as in a route (one event per batch: only
        # concurrent batches overlap, not the sink's own concurrency within one).
        receiver.set_faults(script={1: ["stall"]})
        config = webhook_config(tmp_path, receiver.url, batch_size=1, max_in_flight=8)
        assert main(["dlq", "redrive", "-c", str(config), "--sink", "hooks"]) == 0
        assert "400 re-sent, 0 left" in capsys.readouterr().out
        assert receiver.accepted_sequences() == set(range(1, 401))
        assert receiver.max_in_flight >= 2
        assert dlq.read_bytes() == b""
        by_study: dict[int, list[int]] = {}
        for request in receiver.accepted():
            for sequence in request.sequences:
                by_study.setdefault(sequence % 40, []).append(sequence)
        assert all(seen == sorted(seen) for seen in by_study.values())  # study order kept


def test_dlq_redrive_states_its_deadline_when_it_passes(tmp_path, capsys):
    with WebhookReceiver() as receiver:
        dead_letters(tmp_path, receiver.url, 6)
        receiver.set_faults(rate_stall=1.0)
        config = webhook_config(tmp_path, receiver.url, batch_size=1, max_in_flight=1)
        redrive = ["dlq", "redrive", "-c", str(config), "--sink", "hooks"]
        assert main([*redrive, "--deadline", "1s"]) == 1
        captured = capsys.readouterr()
        assert "0 re-sent, 6 left in the dead-letter file" in captured.out
        assert (
            "dicom-bridge: --deadline 1s passed: 6 event(s) left in the file (5 not sent at "
            "all); run `dlq redrive` again to continue, or give it a longer --deadline"
        ) in captured.err
    assert "--deadline DURATION" in " ".join(
        subprocess.run(
            bridge_command("dlq", "redrive", "--help"), capture_output=True, text=True
        ).stdout.split()
    )


# -- completion ----------------------------------------------------------------------------


BASH_PROBE = """
source <("$@" completion bash)
complete_words() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _dicom_bridge
    echo "${COMPREPLY[*]}"
}
complete_words dicom-bridge off
complete_words dicom-bridge dlq redrive --dead
complete_words dicom-bridge check --log-level W
complete_words dicom-bridge --log-level info offsets s
"""


def test_bash_completion_completes_commands_options_and_choices():
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, "-c", BASH_PROBE, "probe", *bridge_command()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["offsets", "--deadline", "WARNING", "show set"]


def test_zsh_completion_loads_the_same_function(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef dicom-bridge\n")
    assert "bashcompinit" in script and "complete -F _dicom_bridge dicom-bridge" in script


def test_schema_command_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert schema["title"] == "dicom-bridge config" and "sinks" in schema["properties"]
