"""Secrets a peer sends back, and a bearer token ending in a newline.

Canaries carry a trailing newline (a secret file copied into a variable) or come from
`*_file` secrets; the feed and the webhook receivers echo every credential they receive in
their error bodies, `WWW-Authenticate` and other headers, and redirect targets. Nothing the
bridge logs (text and JSON, DEBUG), prints (`run`, `check`, `offsets show`, `dlq show`),
serves (`/readyz`, `/metrics`) or dead-letters may hold one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.helpers import read_events
from tests.integration.webhook.helpers import FAST_RETRY
from tests.security import canaries
from tests.security.echo import FORWARD, EchoPeer, Seen
from tests.security.scenario import cli, config_file

ENTRIES = 20
REJECTED = 7  # the receivers refuse this sequence for good, echoing: a dead letter
NEWLINE_ENV = {  # every variable a secret of the configs below comes from ends in a newline
    "FEED_TOKEN": canaries.FEED_TOKEN.value + "\n",
    "WEBHOOK_SECRET": canaries.WEBHOOK_SECRET.value + "\n",
    "WEBHOOK_HEADER": canaries.WEBHOOK_HEADER.value + "\r\n",
}
FEED_AUTH = {"type": "bearer", "token": "${FEED_TOKEN}"}


def feed_plan(number: int, request: Seen) -> int:
    """A 500 and a 429, both echoing, then the simulator's answers."""
    return {0: 500, 1: 429}.get(number, FORWARD)


def receiver_plan(number: int, request: Seen) -> int:
    """A 500 and a redirect, echoing; the rejected sequence gets an echoing 400."""
    if number in (0, 1):
        return 500 if number == 0 else 307
    if f'"sequence":{REJECTED},'.encode() in request.body:
        return 400
    return 200


def echo_sinks(out: Path, hooks_url: str, basic_url: str) -> list[dict[str, Any]]:
    """A file route, and two webhook routes whose secrets come from files (each ending in a
    newline) or from the environment: one with a bearer token, one with user info."""
    files = {
        "secret_file": canaries.WEBHOOK_SECRET.value,
        "bearer_token_file": canaries.WEBHOOK_BEARER.value,
        "headers_file": {"X-Api-Key": canaries.WEBHOOK_HEADER.value},
    }
    secrets: dict[str, Any] = {}
    kept = out.parent / "secrets"  # as Kubernetes mounts them, out of the output directory
    kept.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        if isinstance(value, dict):
            secrets[key] = {name: str(_write(kept / name, text)) for name, text in value.items()}
        else:
            secrets[key] = str(_write(kept / key, value))

    def route(name: str, **settings: Any) -> dict[str, Any]:
        dead_letter = {"type": "file", "path": str(out / f"{name}-dead-letters.jsonl")}
        return {"name": name, "retry": FAST_RETRY, "dead_letter": dead_letter, **settings}

    return [
        route("archive", type="file", path=str(out / "events.jsonl")),
        route("hooks", type="webhook", url=canaries.webhook_url(hooks_url), **secrets),
        route(
            "basic",
            type="webhook",
            url=canaries.webhook_url(basic_url, user_info=True),
            secret="${WEBHOOK_SECRET}",
            headers={"X-Api-Key": "${WEBHOOK_HEADER}"},
        ),
    ]


def _write(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    return path


@pytest.fixture
def echoing(tmp_path, simulator):
    """The simulator behind an echoing feed, two echoing receivers, and a config using them."""
    sim = simulator(entries=ENTRIES, seed=5, token=canaries.FEED_TOKEN.value)
    peers = [
        EchoPeer(feed_plan, upstream=sim.url).start(),
        EchoPeer(receiver_plan).start(),
        EchoPeer(receiver_plan).start(),
    ]
    feed, hooks, basic = peers
    sinks = echo_sinks(tmp_path / "out", f"{hooks.url}/hooks", f"{basic.url}/hooks")
    top = {
        "feed": {"auth": FEED_AUTH, "retry": FAST_RETRY},
        "http": {"listen": "127.0.0.1:0", "unready_after": "0s"},
    }
    yield config_file(tmp_path, feed.url, sinks, **top), peers
    for peer in peers:
        peer.stop()


def assert_written_files_clean(out: Path) -> None:
    for written in out.iterdir():
        canaries.assert_clean(written.read_bytes(), str(written))


async def test_echoing_peers_leak_into_no_log_readiness_metrics_or_dead_letter(
    echoing, tmp_path, monkeypatch, captured_logs
):
    path, (feed, hooks, basic) = echoing
    for name, value in NEWLINE_ENV.items():
        monkeypatch.setenv(name, value)
    pipeline = Pipeline(parse_config(path.read_text()))
    running = asyncio.create_task(pipeline.run(exit_when_caught_up=True))
    served: list[str] = []
    while not pipeline.listener.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{pipeline.listener.port}"
    async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(60):
        while not running.done():  # /readyz shows the feed's and the sinks' last errors
            try:
                for endpoint in ("/readyz", "/metrics"):
                    served.append((await http.get(endpoint)).text)
            except httpx.TransportError:  # the bridge caught up and closed its listener
                break
            await asyncio.sleep(0.02)
    code = await asyncio.wait_for(running, 30)

    for answer in served:
        canaries.assert_clean(answer, f"an answer of the listener: {answer[:80]}")
    canaries.assert_clean(captured_logs.getvalue(), "the logs")
    assert_written_files_clean(tmp_path / "out")
    assert code == 0 and feed.echoed == 2 and hooks.echoed == basic.echoed == 3
    assert any("feed" in answer and "500" in answer for answer in served), "no echo was seen"
    for name in ("hooks", "basic"):
        [dead] = [
            orjson.loads(line)
            for line in (tmp_path / "out" / f"{name}-dead-letters.jsonl").read_bytes().splitlines()
        ]
        assert dead["sequence"] == REJECTED and "400 Bad Request" in dead["reason"]
        assert "**********" in dead["reason"]  # the echo is there, masked
    events, _ = read_events(tmp_path / "out" / "events.jsonl")
    assert len(events) == ENTRIES


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_echoing_peers_leak_into_no_cli_output(echoing, tmp_path, log_format):
    path, (feed, hooks, basic) = echoing
    config = str(path)

    ran = cli("run", "-c", config, "--exit-when-caught-up", log_format=log_format, env=NEWLINE_ENV)

    assert ran.returncode == 0, ran.stderr
    assert "failed (500 " in ran.stderr and "**********" in ran.stderr  # echoed, masked
    assert feed.echoed == 2 and hooks.echoed == basic.echoed == 3
    assert_written_files_clean(tmp_path / "out")
    shown = cli(
        "dlq", "show", "-c", config, "--sink", "hooks", log_format=log_format, env=NEWLINE_ENV
    )
    assert "400" in shown.stdout and "**********" in shown.stdout
    cli("dlq", "show", "-c", config, "--sink", "basic", "--json", env=NEWLINE_ENV)


def test_peers_refusing_with_an_echo_are_reported_without_the_secrets(tmp_path):
    refuse = lambda number, request: 400  # noqa: E731
    with EchoPeer(refuse) as feed, EchoPeer(refuse) as hooks, EchoPeer(refuse) as basic:
        sinks = echo_sinks(tmp_path / "out", f"{hooks.url}/hooks", f"{basic.url}/hooks")
        config = str(config_file(tmp_path, feed.url, sinks, feed={"auth": FEED_AUTH}))

        for log_format in ("text", "json"):
            ran = cli("run", "-c", config, log_format=log_format, env=NEWLINE_ENV)
            assert ran.returncode == 1 and "400 Bad Request" in ran.stderr
            assert "**********" in ran.stderr  # the echo is reported, masked
        checked = cli("check", "-c", config, env=NEWLINE_ENV)
        assert "FAIL feed: 400 Bad Request" in checked.stdout
        assert "ok   sink hooks: webhook" in checked.stdout  # OPTIONS answered, echoing
        shown = cli("offsets", "show", "-c", config, "--json", env=NEWLINE_ENV)
        assert "400 Bad Request" in orjson.loads(shown.stdout)["latest_error"]
        shown = cli("offsets", "show", "-c", config, env=NEWLINE_ENV)
        assert "400 Bad Request" in shown.stderr and "**********" in shown.stderr
        reset = cli(
            "--debug", "offsets", "reset", "-c", config, "--sink", "archive", "--to-latest",
            env=NEWLINE_ENV,
        )  # fmt: skip
        assert reset.returncode == 1 and "Traceback" in reset.stderr
    assert feed.echoed >= 6 and hooks.echoed >= 1 and basic.echoed >= 1


def test_regression_a_bearer_token_ending_in_a_newline_is_sent_and_never_shown(tmp_path, simulator):
    sim = simulator(entries=5, token=canaries.FEED_TOKEN.value)
    sinks = [{"name": "archive", "type": "file", "path": str(tmp_path / "events.jsonl")}]
    config = str(config_file(tmp_path, sim.url, sinks, feed={"auth": FEED_AUTH}))

    checked = cli("check", "-c", config, env=NEWLINE_ENV)
    assert checked.returncode == 0 and "latest sequence 5" in checked.stdout, checked.stdout
    shown = cli("offsets", "show", "-c", config, "--json", env=NEWLINE_ENV)
    assert orjson.loads(shown.stdout)["latest_error"] is None
    ran = cli("run", "-c", config, "--exit-when-caught-up", env=NEWLINE_ENV, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert len(read_events(tmp_path / "events.jsonl")[0]) == 5
