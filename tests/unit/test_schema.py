"""The JSON Schema of the config file (`docs/config.schema.json`): up to date with the
models, and every example config and every config the docs show validates against it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from bridge.config.schema import SCHEMA_PATH, config_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))


def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_up_to_date():
    committed = (ROOT / SCHEMA_PATH).read_text()
    assert committed == schema_text(), "run `python -m bridge.config.schema --write`"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_config_validates(example):
    assert EXAMPLES
    errors = [
        f"{list(error.path)}: {error.message}"
        for error in validator().iter_errors(yaml.safe_load(example.read_text()))
    ]
    assert errors == []


def test_the_schema_refuses_what_the_bridge_refuses():
    check = validator()
    for document in (
        {"feed": {"url": "http://h"}, "sinks": [{"name": "a", "type": "kafak"}]},
        {"feed": {"url": "http://h", "poll_interval": "5 parsecs"}, "sinks": []},
        {"feed": {"url": "http://h"}, "sinks": [{"name": "a", "type": "stdout", "paht": 1}]},
        {"sinks": [{"name": "a", "type": "stdout"}]},
    ):
        assert list(check.iter_errors(document)), document


def test_secret_files_and_dead_letters_without_a_name_validate():
    text = """
feed: {url: "https://dicom.example", auth: {type: bearer, token_file: /run/secrets/token}}
sinks:
  - name: hooks
    type: webhook
    url: https://example.org/hook
    secret_file: /run/secrets/webhook
    dead_letter: {type: file, path: out/dlq.jsonl}
"""
    assert list(validator().iter_errors(yaml.safe_load(text))) == []
    schema = orjson.loads(schema_text())
    assert "secret_file" in schema["$defs"]["sinks__webhook__config__Config"]["properties"]
