"""Config errors as one line each: `key.path: message`, in the words of the YAML file.

pydantic's locations contain the tags of discriminated unions (`sinks.0.file.path`) and its
messages talk about Python ("Input should be a valid dictionary or instance of ..."). Each
error's location is walked along the model tree instead: union tags are dropped
(`sinks[0].path`), the model that rejected an unknown key supplies the nearest valid key,
and secret fields are known, so their input is never echoed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, SecretStr, ValidationError

from bridge.core.configspec import (
    FILE_SUFFIX,
    LOCATED_ERROR,
    holds_secret,
    secret_fields,
    tag_of_model,
)

Path = tuple[str | int, ...]


class ConfigError(Exception):
    """An invalid or unreadable config; `lines` holds one `key.path: message` per problem."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


def format_path(path: Path) -> str:
    """('sinks', 1, 'path') → `sinks[1].path`. A key that is empty or holds characters
    that do not print (line breaks, controls) is quoted: `feed.'\\x0b'`, so that each
    error stays one line."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = str(part) if str(part).isprintable() and str(part) else repr(str(part))
        text += f".{key}" if text else key
    return text or "(top level)"


def line(path: Path, message: str) -> str:
    return f"{format_path(path)}: {message}"


def validation_problems(exc: ValidationError, root: type[BaseModel]) -> list[tuple[Path, str]]:
    """Each error of `exc` (raised validating `root`) as (config key path, message); a value
    no member of a plain union accepts is one problem, not one per member."""
    problems, unions = [], set()
    for error in exc.errors():
        where = _locate(root, error["loc"])
        if where.any_of:
            if where.path in unions:
                continue
            unions.add(where.path)
        problems.append(_problem(error, where))
    return problems


def is_secret(root: type[BaseModel], path: Path, data: Any) -> bool:
    """Whether the value at config key `path` of `data` (validated as `root`) is or holds a
    secret. Unions are resolved by the data's `type` key, or by any member if it has none."""
    annotation: Any = root
    for index, part in enumerate(path):
        members = _union_members(annotation)
        if members:
            tag = data.get("type") if isinstance(data, dict) else None
            member = members.get(tag) if isinstance(tag, str) else None
            candidates = [member] if member is not None else list(members.values())
            return any(is_secret(model, path[index:], data) for model in candidates)
        child = _child(_strip(annotation), part)
        if child is None:  # inside a secret given as a list (webhook keys), or an unknown key
            return _model(annotation) is None and holds_secret(annotation)
        annotation = child
        data = data.get(part) if isinstance(data, dict) else _item(data, part)
    return holds_secret(annotation)


def _item(data: Any, index: str | int) -> Any:
    if isinstance(data, list) and isinstance(index, int) and 0 <= index < len(data):
        return data[index]
    return None


@dataclass(frozen=True, slots=True)
class _Location:
    path: Path  # the config keys, without union tags
    owner: type[BaseModel] | None  # the model the last key belongs to
    annotation: Any  # the type expected at the location, when known
    any_of: bool = False  # the location is a plain union: the error is one member's


def _locate(root: type[BaseModel], loc: Sequence[str | int]) -> _Location:
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    annotation: Any = root
    any_of = False
    for part in loc:
        members = _union_members(annotation)
        if isinstance(part, str) and part in members:
            annotation = members[part]  # a discriminator tag, not a key of the file
            continue
        if isinstance(part, str) and not members and _is_union(_strip(annotation)):
            any_of = True  # a plain union member's tag (`str`, `int`...), not a key either
            continue
        path.append(part)
        annotation, owner = _child(_strip(annotation), part), _model(annotation)
    return _Location(tuple(path), owner, annotation, any_of)


def _child(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        if field is None:
            return None
        # pydantic moves a field's top-level Annotated metadata (the Discriminator of a
        # tagged union) out of its annotation: put it back.
        metadata = list(field.metadata)
        discriminator = field.discriminator  # a tag field's name, or a Discriminator
        if isinstance(discriminator, str):
            metadata.append(Discriminator(discriminator))
        elif discriminator is not None:
            metadata.append(discriminator)
        return Annotated[(field.annotation, *metadata)] if metadata else field.annotation
    args = get_args(annotation)
    if get_origin(annotation) in (list, tuple, set, frozenset) and args:
        return args[0]
    if get_origin(annotation) is dict and len(args) == 2:
        return args[1]
    return None


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] → X and X | None → X."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif _is_union(annotation) and len(_not_none(annotation)) == 1:
            annotation = _not_none(annotation)[0]
        else:
            return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def _not_none(annotation: Any) -> list[Any]:
    return [arg for arg in get_args(annotation) if arg is not NoneType]


def _model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _union_members(annotation: Any) -> dict[str, type[BaseModel]]:
    """The members of a discriminated union of models, by tag ({} for anything else)."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *metadata = get_args(annotation)
            if any(isinstance(item, Discriminator) for item in metadata):
                break
        elif _is_union(annotation) and len(_not_none(annotation)) == 1:
            annotation = _not_none(annotation)[0]
        else:
            return {}
    members = get_args(annotation) if _is_union(annotation) else (annotation,)
    models = [model for model in map(_model, members) if model and "type" in model.model_fields]
    return {tag_of_model(model): model for model in models}


def _problem(error: Any, where: _Location) -> tuple[Path, str]:
    kind, ctx, path = error["type"], error.get("ctx") or {}, where.path
    expected = _strip(where.annotation)
    secret = holds_secret(expected)
    got = "" if secret else _got(error.get("input"))
    if where.any_of:
        return path, f"expected {_any_of(expected)}{got}"
    if kind == LOCATED_ERROR:
        return (*path, *ctx["at"]), ctx["message"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = sorted(_union_members(where.annotation))
        valid = ", ".join(tags)
        if kind == "union_tag_not_found":
            return (*path, "type"), f"field required (valid types: {valid})"
        close = _closest(str(ctx["tag"]), tags)
        hint = f"did you mean {close!r}? " if close else ""
        return (*path, "type"), f"unknown type {ctx['tag']!r} ({hint}valid types: {valid})"
    if kind == "missing":
        return path, "field required"
    if kind == "extra_forbidden":
        keys = sorted(_keys(where.owner)) if where.owner else []
        close = _closest(str(path[-1]), keys)
        hint = f"did you mean {close!r}?" if close else f"valid keys: {', '.join(keys)}"
        return path, f"unknown key ({hint})"
    if kind in ("value_error", "assertion_error"):
        return path, str(ctx["error"])
    if kind in _EXPECTED:
        return path, f"expected {_EXPECTED[kind]}{got}"
    if kind in _BOUNDS:
        bounds = {key: _number(value) for key, value in ctx.items()}
        return path, _BOUNDS[kind].format(**bounds) + got
    if kind == "literal_error":
        return path, f"must be {ctx['expected']}{got}"
    if kind == "string_pattern_mismatch":
        return path, f"must match {ctx['pattern']}{got}"
    message = error["msg"]
    return path, message[:1].lower() + message[1:]


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys `model` accepts: its fields, and `<name>_file` for each secret field."""
    return [*model.model_fields, *(name + FILE_SUFFIX for name in secret_fields(model))]


_EXPECTED = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "float_parsing": "a number",
    "float_type": "a number",
    "int_from_float": "a whole number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "list_type": "a list",
    "model_attributes_type": "a mapping",
    "model_type": "a mapping",
    "path_type": "a path",
    "string_type": "a string",
}
_BOUNDS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
}


_MEMBER_WORDS = (
    (bool, "true or false"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (SecretStr, "a string"),
)


def _any_of(union: Any) -> str:
    """What a plain union accepts, in words: `a string, an integer or true or false`."""
    words: list[str] = []
    for member in map(_strip, _not_none(union)):
        word = "a mapping" if _model(member) else getattr(member, "__name__", str(member))
        if isinstance(member, type):
            word = next((w for kind, w in _MEMBER_WORDS if issubclass(member, kind)), word)
        if word not in words:
            words.append(word)
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _closest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1)
    return close[0] if close else None


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list):
        return ", got a list"
    if value is None:
        return ", got null"
    if isinstance(value, bool):
        return f", got {str(value).lower()}"
    text = repr(value) if isinstance(value, str) else _number(value)
    return f", got {text if len(text) <= 60 else text[:57] + '...'}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
