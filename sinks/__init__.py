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

from sinks._config import FilterConfig, RouteRetryConfig, SinkConfig
from sinks._registry import SINK_TYPES, AnySinkConfig, config_models, create_sink

__all__ = [
    "SINK_TYPES",
    "AnySinkConfig",
    "FilterConfig",
    "RouteRetryConfig",
    "SinkConfig",
    "config_models",
    "create_sink",
]
