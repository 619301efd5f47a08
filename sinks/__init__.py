"""The sink registry: sink type name → subpackage.

Every subpackage has the same file set: `config.py` (a `Config` model subclassing
`SinkConfig` with `type: Literal["<name>"]`) and `sink.py` (`create(config, *, name) -> Sink`
plus the sink class). Config models are imported eagerly: they are light, and the config
loader needs them all to build the `type`-discriminated union. `sink.py` is imported only
when a sink of that type is created, so a client library (confluent-kafka, azure-servicebus)
is loaded only by configs that use it.

Adding a sink type is one line in `SINK_TYPES`. A sink's `config.py` imports only
`sinks._config` and `bridge.core.configspec` (never `bridge.config`, which imports this
registry), and leaves secret values out of its validation messages.
"""

from __future__ import annotations

import importlib

from bridge.core.configspec import tagged_union
from bridge.core.sink import Sink
from sinks._config import FilterConfig, SinkConfig

SINK_TYPES: dict[str, str] = {
    "file": "sinks.file",
    "kafka": "sinks.kafka",
    "servicebus": "sinks.servicebus",
    "stdout": "sinks.stdout",
    "webhook": "sinks.webhook",
}

_MODELS: dict[str, type[SinkConfig]] = {
    name: importlib.import_module(f"{package}.config").Config
    for name, package in SINK_TYPES.items()
}

AnySinkConfig = tagged_union(list(_MODELS.values()))
"""Any registered sink's config, chosen by its `type` key."""

for _model in (SinkConfig, *_MODELS.values()):  # resolve `dead_letter: AnySinkConfig | None`
    _model.model_rebuild(_types_namespace={"AnySinkConfig": AnySinkConfig})


def config_models() -> dict[str, type[SinkConfig]]:
    """Each registered sink type's config model, by type name."""
    return dict(_MODELS)


def create_sink(config: SinkConfig, name: str | None = None) -> Sink:
    """Build the sink `config` describes; `name` defaults to the config's route name."""
    module = importlib.import_module(f"{SINK_TYPES[config.type]}.sink")
    return module.create(config, name=name or config.name)


__all__ = [
    "SINK_TYPES",
    "AnySinkConfig",
    "FilterConfig",
    "SinkConfig",
    "config_models",
    "create_sink",
]
