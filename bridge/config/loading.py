"""Reading the config file: YAML read strictly, `${VAR}` expanded, models validated, and
every problem reported as one `key.path: message` line."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from bridge.config._env import expand_env
from bridge.config._errors import ConfigError, format_path, is_secret, line, validation_problems
from bridge.config._yaml import StrictLoader
from bridge.config.models import BridgeConfig
from bridge.core.blockingio import os_reason


def load_config(path: str | os.PathLike[str]) -> BridgeConfig:
    """Read and validate a config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([os_reason(exc, path)]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<string>") -> BridgeConfig:
    """Validate config text; `source` names it in YAML syntax errors."""
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. U+0080
        row = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        reason = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise ConfigError([f"{source}:{row}:{column}: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: {' '.join(str(exc).split())}"]) from None
    parsed = {} if data is None else data
    data, problems = expand_env(
        parsed, os.environ, secret=lambda path: is_secret(BridgeConfig, path, parsed)
    )
    try:
        config = BridgeConfig.model_validate(data)
    except ValidationError as exc:
        # An unset variable's own key would fail again as ""; the first line says why.
        unset = [format_path(path) for path, _ in problems]
        problems += [
            (path, message)
            for path, message in validation_problems(exc, BridgeConfig)
            if not any(_within(format_path(path), prefix) for prefix in unset)
        ]
    else:
        if not problems:
            return config
    raise ConfigError(line(path, message) for path, message in problems)


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))
