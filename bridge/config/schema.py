"""The JSON Schema of the config file, generated from the config models (for editors: the
YAML language server reads it from a `# yaml-language-server: $schema=...` line).

    python -m bridge.config.schema            # print it (also `dicom-bridge schema`)
    python -m bridge.config.schema --write    # refresh docs/config.schema.json

What the models accept beyond their plain fields is added here: durations written `5s`
(declared on `Duration`), a dead-letter target's optional `name`, and `<key>_file` for
every secret (the file holding it). A `${VAR}` reference is a string: in a key that is not
one, editors flag it though the bridge accepts it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import orjson

from bridge.config.models import BridgeConfig

SCHEMA_PATH = Path("docs/config.schema.json")
_REF = "#/$defs/"


def config_schema() -> dict[str, Any]:
    schema = BridgeConfig.model_json_schema(mode="validation")
    definitions: dict[str, Any] = schema["$defs"]
    for definition in list(definitions.values()):
        _secret_files(definition)
    _dead_letter_names(definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "dicom-bridge config",
    }


def schema_text() -> str:
    return orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"


def _secret_files(definition: dict[str, Any]) -> None:
    """Each secret may instead be read from a file: `<key>_file`."""
    properties: dict[str, Any] = definition.get("properties", {})
    for key, spec in list(properties.items()):
        if _is_secret(spec):
            properties[f"{key}_file"] = {
                "type": "string",
                "description": f"A file holding `{key}` (instead of the value itself).",
            }
            required = definition.get("required", [])
            if key in required:
                required.remove(key)


def _is_secret(spec: dict[str, Any]) -> bool:
    if spec.get("format") == "password":
        return True
    return any(_is_secret(option) for option in spec.get("anyOf", []) if isinstance(option, dict))


def _dead_letter_names(definitions: dict[str, Any]) -> None:
    """A dead-letter target is a sink config whose `name` is optional (the route's name
    with `.dead_letter` is given): its own copy of each sink type's definition."""
    sinks = [name for name, d in definitions.items() if "dead_letter" in d.get("properties", {})]
    for name in sinks:
        target = copy.deepcopy(definitions[name])
        target["required"] = [key for key in target.get("required", []) if key != "name"]
        definitions[f"{name}__dead_letter"] = target
    for name in sinks:
        spec = definitions[name]["properties"]["dead_letter"]
        text = orjson.dumps(spec).decode()
        for sink in sinks:
            text = text.replace(f'"{_REF}{sink}"', f'"{_REF}{sink}__dead_letter"')
        definitions[name]["properties"]["dead_letter"] = orjson.loads(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.config.schema")
    parser.add_argument("--write", action="store_true", help=f"write {SCHEMA_PATH}")
    args = parser.parse_args(argv)
    if args.write:
        SCHEMA_PATH.write_text(schema_text())
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
