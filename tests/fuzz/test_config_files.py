"""Config files: whatever the file holds, `load_config` returns a `BridgeConfig` or raises
`ConfigError` with one line per problem, `key.path: message` (or `file:line:col: message`
for YAML syntax, `file: cause` for a file it cannot read), never another exception, never
a hang (the deadline), never a secret; the CLI exits 2 with exactly those lines."""

from __future__ import annotations

import functools
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given

from bridge.cli import main
from bridge.cli.options import EXIT_USAGE
from bridge.config import BridgeConfig, ConfigError, load_config
from tests.e2e.helpers import run_bridge
from tests.fuzz.config_model import SECRET_ENV, SECRETS, UNSET, documents, key_paths
from tests.fuzz.settings import fuzz

FIELD_NAME = re.compile(r"[a-z_]+")
POSITION = re.compile(r"\d+:\d+: .")
ALIAS_BOMB = (
    b"feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout}]\nx:\n"
    + b"  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    + b"".join(
        b"  a%d: &a%d [%s]\n" % (i, i, b", ".join([b"*a%d" % (i - 1)] * 10)) for i in range(1, 10)
    )
)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config") / "bridge.yaml"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(UNSET, raising=False)


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """`main` points the root logger at the stderr of the moment: restore it after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def problems(path: Path) -> list[str] | None:
    """The lines of the ConfigError loading `path` raises, None if the config is valid."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        return exc.lines
    assert isinstance(loaded, BridgeConfig)
    return None


@fuzz(300)
@given(documents())
# Regressions: ten billion values from a kilobyte (a hang); RecursionErrors from nesting and
# from an alias inside the node it names; a key path `[1]` for the key `1`; a message over
# two lines for a character YAML refuses (U+009E), and for a key holding a line break.
@example((ALIAS_BOMB, None))
@example((b"feed: " + b"[" * 5000 + b"]" * 5000, None))
@example((b"feed: &f {url: 'http://h', x: *f}\nsinks: [{name: a, type: stdout}]\n", None))
@example((b"feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout}]\n1: x\n", None))
@example((b"feed: {url: 'http://h'}\n\xc2\x9e: x\n", None))
@example((b'feed: {url: "http://h", "a\\x0bb": 1}\nsinks: [{name: a, type: stdout}]\n', None))
def test_a_config_or_one_well_formed_line_per_problem(config_file: Path, document) -> None:
    data, source = document
    config_file.write_bytes(data)
    lines = problems(config_file)
    if lines is None:
        return
    assert lines
    paths = functools.cache(lambda: _key_paths(data, source))  # an alias bomb has billions
    for line in lines:
        assert line.splitlines() == [line], f"not one line: {line!r}"
        assert _well_formed(line, str(config_file), paths), f"no key path: {line!r}"
        assert "pydantic" not in line and "Traceback" not in line
        assert not any(secret in line for secret in SECRETS), f"secret shown: {line!r}"


@fuzz(100)
@given(documents())
def test_the_cli_exits_2_with_those_lines(config_file: Path, _restore_logging, document) -> None:
    data, _ = document
    config_file.write_bytes(data)
    lines = problems(config_file)
    if lines is None:
        return  # valid: `check` would go on to probe the feed and the sinks
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        assert main(["check", "-c", str(config_file)]) == EXIT_USAGE
    assert stderr.getvalue().splitlines() == [f"dicom-bridge: config error: {x}" for x in lines]
    assert stdout.getvalue() == ""


@fuzz(3, deadline_ms=None)
@given(documents())
def test_a_real_process_exits_2_without_a_traceback(config_file: Path, document) -> None:
    data, _ = document
    config_file.write_bytes(data)
    lines = problems(config_file)
    assume(lines is not None)
    result = run_bridge("check", "-c", str(config_file), timeout=60)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [f"dicom-bridge: config error: {x}" for x in lines]
    assert result.stdout == ""


@pytest.mark.parametrize("url", ["http://h:99999", "http://h:-1", "http://h:abc", "http://h\0"])
@pytest.mark.parametrize(
    ("config", "key"),
    [
        ("feed: {url: URL}\nsinks: [{name: a, type: stdout}]\n", "feed.url"),
        ("feed: {url: 'http://h'}\nsinks: [{name: a, type: webhook, url: URL}]\n", "sinks[0].url"),
    ],
)
def test_urls_that_cannot_work_are_config_errors(tmp_path: Path, url: str, config: str, key: str):
    """Regression: such URLs were accepted, and the bridge then retried the requests they
    cannot make for ever, as if the feed or the receiver were down."""
    path = tmp_path / "bridge.yaml"
    path.write_text(config.replace("URL", json.dumps(url)))
    [line] = problems(path)
    assert line.startswith(f"{key}: ") and ("port" in line or "host" in line)


def test_a_value_no_union_member_accepts_is_one_problem(tmp_path: Path) -> None:
    """Regression: one line per member of the union, under paths with pydantic's member
    tags (`producer.linger.ms.lax-or-strict[lax=json-or-python[...`)."""
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "feed: {url: 'http://h'}\nsinks: [{name: e, type: kafka, bootstrap_servers: 'k:9092', "
        "topic: t, producer: {linger.ms: null}}]\n"
    )
    assert problems(path) == [
        "sinks[0].producer.linger.ms: expected a string, an integer, a number or true or false"
    ]


def _key_paths(data: bytes, document: Any) -> set[str]:
    """Key paths of what the file holds: parsed as YAML when it parses, else the document
    it was rendered from (whose deep nesting is still a placeholder)."""
    try:
        return key_paths(yaml.safe_load(data))
    except (yaml.YAMLError, RecursionError):
        return key_paths(document)


def _well_formed(line: str, source: str, paths: Callable[[], set[str]]) -> bool:
    """`file:line:col: message`, `file: cause`, or `key.path: message` with a key path of
    the file (`paths` computes them: only needed, and only once, for key path lines)."""
    if line.startswith(f"{source}:"):  # the file cannot be read or parsed
        rest = line[len(source) + 1 :]
        return bool(POSITION.match(rest) or (rest.startswith(" ") and rest.strip()))
    for at in (match.start() for match in re.finditer(": ", line)):
        if line[at + 2 :].strip() and _known(line[:at], paths()):
            return True
    return False


def _known(where: str, paths: set[str]) -> bool:
    """A path of the file, inside a value of it (list items), or a field missing from a
    mapping of it."""
    where = re.sub(r"(\[\d+\])+$", "", where)
    if where in paths:
        return True
    parent, _, name = where.rpartition(".")
    return (parent or "(top level)") in paths and bool(FIELD_NAME.fullmatch(name))
