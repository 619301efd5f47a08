"""The YAML config file: its models (the single source of the config reference,
`python -m bridge.config.docs`), `${VAR}` expansion and strict loading.

`load_config(path)` / `parse_config(text)` return a `BridgeConfig` or raise `ConfigError`
with one `key.path: message` line per problem. Environment references (`${VAR}`,
`${VAR:-default}`; `$${` for a literal `${`) are expanded in string values after YAML
parsing; the YAML is read strictly (repeated keys, keys that are not strings, nesting too
deep and alias bombs are `file:line:col` errors).
"""

from bridge.config._errors import ConfigError
from bridge.config.feed import (
    AuthConfig,
    AzureAuth,
    BearerAuth,
    FeedConfig,
    NoAuth,
    default_feed_name,
)
from bridge.config.loading import load_config, parse_config
from bridge.config.models import (
    AzureBlobOffsetsConfig,
    BridgeConfig,
    HaConfig,
    HttpConfig,
    LogsConfig,
    OffsetsConfig,
    PostgresOffsetsConfig,
    SqliteOffsetsConfig,
)

__all__ = [
    "AuthConfig",
    "AzureAuth",
    "AzureBlobOffsetsConfig",
    "BearerAuth",
    "BridgeConfig",
    "ConfigError",
    "FeedConfig",
    "HaConfig",
    "HttpConfig",
    "LogsConfig",
    "NoAuth",
    "OffsetsConfig",
    "PostgresOffsetsConfig",
    "SqliteOffsetsConfig",
    "default_feed_name",
    "load_config",
    "parse_config",
]
