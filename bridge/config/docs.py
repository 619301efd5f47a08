"""The README's config reference, generated from the config models (each component declares
its settings once; docs and validation both come from that declaration).

    python -m bridge.config.docs            # print the reference
    python -m bridge.config.docs --write    # refresh it in README.md between the markers
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bridge.config import (
    AzureAuth,
    AzureBlobOffsetsConfig,
    BearerAuth,
    BridgeConfig,
    FeedConfig,
    HttpConfig,
    NoAuth,
    PostgresOffsetsConfig,
    SqliteOffsetsConfig,
)
from bridge.core.configspec import (
    FILE_SUFFIX,
    EntraCredential,
    RetryConfig,
    parse_duration,
    secret_fields,
)
from sinks import FilterConfig, RouteRetryConfig, SinkConfig, config_models

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
_ROUTE_FIELDS = set(SinkConfig.model_fields) - {"type"}

SECTIONS: list[tuple[str, type[BaseModel], set[str]]] = [
    ("Top level", BridgeConfig, set()),
    ("`feed`", FeedConfig, set()),
    ("`feed.retry`", RetryConfig, set()),
    ("`feed.auth` with `type: none`", NoAuth, set()),
    ("`feed.auth` with `type: bearer`", BearerAuth, set()),
    ("`feed.auth` with `type: azure`", AzureAuth, set()),
    ("`offsets` with `type: sqlite`", SqliteOffsetsConfig, set()),
    ("`offsets` with `type: postgres`", PostgresOffsetsConfig, set()),
    ("`offsets` with `type: azure_blob`", AzureBlobOffsetsConfig, set()),
    ("`http`", HttpConfig, set()),
    ("Every sink (route settings)", SinkConfig, {"type"}),
    ("`filter` (of a sink)", FilterConfig, set()),
    ("`retry` (of a sink)", RouteRetryConfig, set()),
]


def reference() -> str:
    parts = []
    sections = SECTIONS + [
        (f"Sink `type: {name}`", model, _ROUTE_FIELDS) for name, model in config_models().items()
    ]
    documented = {model for _, model, _ in sections} | set(config_models().values())
    for title, model, skip in sections:
        for heading, part in _with_nested(title, model, skip, documented):
            parts.append(f"#### {heading}\n\n{_doc(part[0])}\n\n{_table(*part)}\n")
    return "\n".join(parts)


Section = tuple[str, tuple[type[BaseModel], set[str]]]


def _with_nested(
    title: str, model: type[BaseModel], skip: set[str], documented: set[type[BaseModel]]
) -> Iterator[Section]:
    """The section of `model`, then one for each nested settings model not shown yet."""
    yield title, (model, skip)
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        for nested in _models_in(field.annotation):
            if nested not in documented:
                documented.add(nested)
                yield from _with_nested(f"{title}: `{name}`", nested, set(), documented)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _table(model: type[BaseModel], skip: set[str]) -> str:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    shared = set(EntraCredential.model_fields)  # a mixin's fields: after the model's own
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] in shared)
    for name, field in fields:
        if name in skip:
            continue
        description = (field.description or "").replace("|", "/").replace("<", "&lt;")
        kind = "duration" if _is_duration(field.metadata) else _type(field.annotation)
        rows.append(f"| `{name}` | {kind} | {_default(field)} | {description} |")
        if name in secret_fields(model):
            rows.append(_file_row(name, mapping=secret_fields(model)[name]))
    return "\n".join(rows)


def _file_row(name: str, *, mapping: bool) -> str:
    """The `<name>_file` key every secret field accepts (`read_secret_files`)."""
    if mapping:
        kind, what = "mapping of paths", f"The same keys as {name}, each mapped to a file"
    else:
        kind, what = "path", "A file"
    return (
        f"| `{name}{FILE_SUFFIX}` | {kind} | - | {what} holding the secret instead (e.g. a "
        "mounted Kubernetes secret), read again when it changes; see [Secrets](#secrets). |"
    )


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is list:
        return "`[]`"
    if field.default_factory is not None:
        return "its defaults"
    value = field.default
    if value is None or value is PydanticUndefined:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _is_duration(metadata: Iterable[Any]) -> bool:
    return any(getattr(meta, "func", None) is parse_duration for meta in metadata)


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return "duration" if _is_duration(annotation.__metadata__) else _type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type(a) for a in args))
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "Path": "path",
        "ByteSize": "size",
    }.get(name, name)


def refresh(readme: Path) -> bool:
    """Rewrite the generated section of `readme`; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    updated = pattern.sub(lambda _: f"{START}\n\n{reference()}\n{END}", text)
    readme.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="refresh README.md in place")
    options = parser.parse_args()
    if options.write:
        refresh(Path("README.md"))
    else:
        sys.stdout.write(reference())
