"""Building blocks shared by the bridge's config models and every sink's config model.

Kept apart from `bridge.config` so that `sinks/` can use them without importing the
top-level config (which imports the sink registry): no import cycle.

Conventions every config model follows (the docs are generated from the models, so the
spec is declared once, as in Redpanda Connect):
- subclass `StrictModel` (unknown keys are errors, inputs are never echoed by pydantic);
- every field has a `description` and, where one makes sense, a default;
- durations use `Duration` with a human default (`Field("5s", validate_default=True)`);
- secrets use `bridge.core.secret.Secret` (stripped, control characters refused, registered
  for scrubbing), and validators of secret fields never put the value in their message;
  every field holding secrets also accepts `<name>_file` (`read_secret_files`);
- a validator that must blame another field than its own raises `error_at(...)`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import SplitResult

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    StringConstraints,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bridge.core.secret import Secret

LOCATED_ERROR = "located"
"""Error type of `error_at`: its context carries the sub-path (`at`) the message is about."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, inputs stay out of messages,
    and each field holding secrets also accepts `<name>_file`."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        return read_secret_files(cls, data)


class EntraCredential(StrictModel):
    """Microsoft Entra ID credential options (the feed's `azure` auth, the Service Bus sink's
    `fully_qualified_namespace`): none set means DefaultAzureCredential."""

    tenant_id: str | None = Field(
        None,
        description="Entra ID: directory (tenant) ID of the service principal (with "
        "client_secret) or, without, of the workload identity (default: AZURE_TENANT_ID).",
    )
    client_id: str | None = Field(
        None,
        description="Entra ID: application (client) ID of a service principal (with "
        "client_secret), or of the managed or workload identity DefaultAzureCredential uses "
        "(default: AZURE_CLIENT_ID).",
    )
    client_secret: Secret | None = Field(
        None,
        description="Entra ID: client secret of a service principal (needs tenant_id, client_id).",
    )
    managed_identity_client_id: str | None = Field(
        None,
        description="Entra ID: client ID of a user-assigned managed identity, used alone "
        "(ManagedIdentityCredential, no fallback to other credentials).",
    )

    @model_validator(mode="after")
    def _one_identity(self) -> Any:
        if self.managed_identity_client_id:
            for other in ("client_secret", "client_id", "tenant_id"):
                if getattr(self, other) is not None:
                    raise error_at(
                        "managed_identity_client_id", message=f"cannot be combined with {other}"
                    )
        if self.client_secret is not None and not (self.tenant_id and self.client_id):
            raise error_at("client_secret", message="requires tenant_id and client_id")
        return self

    def credential_options(self) -> dict[str, str | None]:
        """Keyword arguments of `bridge.feed.azure_credential`, the secret revealed."""
        secret = self.client_secret.get_secret_value() if self.client_secret else None
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": secret,
            "managed_identity_client_id": self.managed_identity_client_id,
        }


def error_at(*at: str | int, message: str) -> PydanticCustomError:
    """An error about `at` (a path relative to the validated model), e.g. ('max',).

    pydantic places a validator's error at the validated object; config errors must name
    the offending key (`sinks[2].name`), which `bridge.config._errors` appends from `at`.
    """
    return PydanticCustomError(LOCATED_ERROR, "{message}", {"at": at, "message": message})


FILE_SUFFIX = "_file"


def holds_secret(annotation: Any) -> bool:
    """SecretStr, or a type built from it (a list, a mapping, a union...)."""
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return True
    return any(holds_secret(argument) for argument in get_args(annotation))


@functools.cache
def secret_fields(model: type[BaseModel]) -> dict[str, bool]:
    """The fields of `model` holding secrets, each with whether it is a mapping of them
    (whose `_file` key then maps the same names to files)."""
    return {
        name: _is_mapping(field.annotation)
        for name, field in model.model_fields.items()
        if holds_secret(field.annotation)
    }


def _is_mapping(annotation: Any) -> bool:
    members = [arg for arg in get_args(annotation) if arg is not NoneType]
    if get_origin(annotation) in (Union, UnionType) and len(members) == 1:
        return _is_mapping(members[0])
    return get_origin(annotation) is dict


def read_secret_files(model: type[BaseModel], data: Any) -> Any:
    """`data` (the input of `model`) with each `<name>_file` key of a secret field replaced
    by the secret its file holds, a `Secret` that follows the file. A mapping of secrets
    (webhook headers, producer properties) takes a mapping of files, merged into it."""
    given = secret_fields(model) if isinstance(data, dict) else {}
    given = {name: mapping for name, mapping in given.items() if name + FILE_SUFFIX in data}
    if not given:
        return data
    data = dict(data)
    for name, mapping in given.items():
        key = name + FILE_SUFFIX
        paths = data.pop(key)
        if not mapping:
            if data.get(name) is not None:
                raise ValueError(f"set either {name} or {key}, not both")
            data[name] = _secret_from(paths, key)
            continue
        if not isinstance(paths, dict):
            raise error_at(key, message="expected a mapping of names to file paths")
        merged = data.get(name) or {}
        if not isinstance(merged, dict):
            continue  # the field's own type error says what is wrong
        merged = dict(merged)
        for item, path in paths.items():
            if item in merged:
                message = f"set either {name}.{item} or {key}.{item}, not both"
                raise error_at(key, item, message=message)
            merged[item] = _secret_from(path, key, item)
        data[name] = merged
    return data


def _secret_from(path: Any, *at: str | int) -> Secret:
    if not isinstance(path, str) or not path.strip():
        raise error_at(*at, message="expected the path of a file holding the secret")
    try:
        return Secret.from_file(path)
    except ValueError as exc:
        raise error_at(*at, message=str(exc)) from None


_DURATION = re.compile(r"(?P<number>-?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_HINT = "use e.g. 250ms, 5s, 2m"


def parse_duration(value: Any) -> float:
    """`250ms`, `5s`, `2m`, `1h` or a bare number of seconds → float seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {_show(value)} ({DURATION_HINT})")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"invalid duration {_show(value)} ({DURATION_HINT})")
        seconds = float(match["number"]) * _UNIT_SECONDS[match["unit"]]
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {_show(value)} ({DURATION_HINT})")
    if seconds < 0:
        raise ValueError(f"invalid duration {_show(value)} (must not be negative)")
    return seconds


def host_port_problem(parts: SplitResult) -> str | None:
    """Why the host or port of a split http(s) URL cannot work, or None. Caught here, such
    a URL would only fail at the first request, retried for ever as if the peer were down."""
    host = parts.hostname or ""
    if not host.isprintable() or " " in host:
        return "the host has characters no host name has"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number 0..65535
    except ValueError:
        return "the port must be a number 0..65535"
    return None


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


DurationText = Annotated[
    str, StringConstraints(pattern=r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
]
"""A duration as written in the config file (in the JSON Schema of `dicom-bridge schema`)."""

Duration = Annotated[
    float, BeforeValidator(parse_duration, json_schema_input_type=float | DurationText)
]
"""Seconds, written `250ms`, `5s`, `2m`, `1h` or as a bare number of seconds."""


class RetryConfig(StrictModel):
    """Exponential backoff with jitter between attempts after a transient failure."""

    initial: Duration = Field(
        "200ms", validate_default=True, gt=0, description="Delay before the first retry."
    )
    max: Duration = Field(
        "30s", validate_default=True, gt=0, description="Upper bound of the growing delay."
    )

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryConfig:
        if self.max < self.initial:
            raise error_at("max", message=f"must not be less than initial ({self.initial:g}s)")
        return self


def tagged_union(models: Sequence[type[BaseModel]], *, default: str | None = None) -> Any:
    """A union of config models told apart by their `type: Literal[...]` field.

    `default` is the tag assumed when a mapping has no `type` key. A callable discriminator
    (rather than `Field(discriminator=...)`) also accepts a single member, so a union can
    start with one type (offset stores) and grow.
    """

    def tag_of(value: Any) -> str | None:
        if isinstance(value, dict):
            tag = value.get("type", default)
        else:
            tag = getattr(value, "type", None)
        return tag if tag is None or isinstance(tag, str) else repr(tag)

    members = tuple(Annotated[model, Tag(tag_of_model(model))] for model in models)
    return Annotated[Union[members], Discriminator(tag_of)]  # noqa: UP007 (built at runtime)


def tag_of_model(model: type[BaseModel]) -> str:
    """The value of `model`'s `type: Literal["..."]` field."""
    tag: str
    (tag,) = get_args(model.model_fields["type"].annotation)
    return tag
