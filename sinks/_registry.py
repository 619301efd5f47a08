"""The registry: sink type name -> subpackage; the union of their config models."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from bridge.core.configspec import tagged_union
from bridge.core.sink import Sink
from sinks._config import SinkConfig

SINK_TYPES: dict[str, str] = {
    "file": "sinks.file",
    "kafka": "sinks.kafka",
    "nats": "sinks.nats",
    "rabbitmq": "sinks.rabbitmq",
    "redis": "sinks.redis",
    "servicebus": "sinks.servicebus",
    "stdout": "sinks.stdout",
    "webhook": "sinks.webhook",
}

_MODELS: dict[str, type[SinkConfig]] = {
    name: importlib.import_module(f"{package}.config").Config
    for name, package in SINK_TYPES.items()
}

if TYPE_CHECKING:  # the union is built from the registry at runtime: checkers see its base
    AnySinkConfig: TypeAlias = SinkConfig
else:
    AnySinkConfig = tagged_union(list(_MODELS.values()))
    """Any registered sink's config, chosen by its `type` key."""

_ALL: list[type[SinkConfig]] = [SinkConfig, *_MODELS.values()]
for _model in _ALL:  # resolve `dead_letter: AnySinkConfig | None`
    _model.model_rebuild(_types_namespace={"AnySinkConfig": AnySinkConfig})


def config_models() -> dict[str, type[SinkConfig]]:
    """Each registered sink type's config model, by type name."""
    return dict(_MODELS)


def create_sink(config: SinkConfig, name: str | None = None) -> Sink:
    """Build the sink `config` describes; `name` defaults to the config's route name."""
    module = importlib.import_module(f"{SINK_TYPES[config.type]}.sink")
    create: Callable[..., Sink] = module.create
    return create(config, name=name or config.name)
