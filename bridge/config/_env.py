"""`${VAR}` and `${VAR:-default}` expansion in parsed config values.

Applied to string values after YAML parsing, not to the text: the key path of an unset
variable is known, and a value can never inject YAML structure. `$${` stands for a
literal `${`; a `$` elsewhere is kept as is (passwords may contain one). Expanded values
are never expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)(\}?)")
_NAME_AND_DEFAULT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
Problem = tuple[tuple[str | int, ...], str]


def expand_env(
    data: Any,
    environ: Mapping[str, str],
    secret: Callable[[tuple[str | int, ...]], bool] = lambda path: False,
) -> tuple[Any, list[Problem]]:
    """Expand `${VAR}` / `${VAR:-default}` in every string value of `data` (not in keys).

    Returns the expanded data and (key path, message) problems. An unset variable
    without default expands to "" so that validation can go on with the other keys. An
    invalid reference is quoted in its message, unless `secret(path)` says the value is a
    secret (a password may contain `${`: the quote would show part of it).
    """
    problems: list[Problem] = []

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(lambda match: substitute(match, path), value)
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        return value

    def substitute(match: re.Match[str], path: tuple[str | int, ...]) -> str:
        escaped, body, closed = match.groups()
        if escaped:
            return match[0][1:]
        reference = _NAME_AND_DEFAULT.fullmatch(body)
        if not closed or reference is None:
            quoted = "in this secret value, not quoted" if secret(path) else f"'{match[0]}'"
            problems.append(
                (
                    path,
                    f"invalid reference {quoted} (use ${{NAME}} or ${{NAME:-default}}, "
                    "and $${ for a literal ${)",
                )
            )
            return ""
        name, default = reference.groups()
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            problems.append((path, f"environment variable {name} is not set"))
            return ""
        return value

    return walk(data, ()), problems
