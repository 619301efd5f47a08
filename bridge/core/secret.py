"""Secret config values: given inline, by `${VAR}`, or in a file re-read when it changes.

Secrets arrive with stray whitespace (a file's final newline, a variable filled from a
mounted file): it is stripped, from both ends, wherever the value comes from. Any other
control character is refused, without quoting the value: an HTTP client would refuse such
a header and quote it in its error. A value read from a file (`<field>_file`, as Kubernetes
mounts secrets) follows the file: `get_secret_value()` stats it (cheap) and reads it again
when it changed, so per-request users pick up a rotated secret without a restart. A file
that cannot be read later, or holds a bad value, leaves the last good value in use, with
a warning. Every value is registered with `bridge.core.redact` so that peers echoing it are
scrubbed.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import core_schema

from bridge.core.redact import register

log = logging.getLogger("bridge.config")

#: A secret file larger than this is not a secret (a wrong path, a device): refused.
MAX_FILE_BYTES = 64 * 1024
_CONTROL = frozenset({"Cc", "Zl", "Zp"})


def clean(value: str) -> str:
    """`value` without surrounding whitespace; ValueError, never quoting the value, if a
    control character remains inside."""
    value = value.strip()
    for char in value:
        if unicodedata.category(char) in _CONTROL:
            raise ValueError(
                f"contains a control character (U+{ord(char):04X}); the value is not shown"
            )
    return value


def read_secret_file(path: Path) -> tuple[str, tuple[int, ...]]:
    """The cleaned content of a secret file and the stat stamp it was read at; ValueError
    with one line naming the path (never the content) when it cannot be used."""
    try:
        stamp = _stamp(path)
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"cannot read {path}: larger than {MAX_FILE_BYTES // 1024} KB")
    try:
        return clean(data.decode("utf-8")), stamp
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from None


def _stamp(path: Path) -> tuple[int, ...]:
    """What changes when the file is rewritten or replaced (a Kubernetes update swaps a
    symlink: another inode)."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size


class Secret(SecretStr):
    """A secret config value (masked in every repr, dump and error), inline or read from
    `path`. pydantic validates a string into one after `clean`ing it."""

    def __init__(self, value: str, path: Path | None = None) -> None:
        super().__init__(value)
        self.path = path
        self._stamp: tuple[int, ...] | None = None
        self._problem: str | None = None  # the last warning about the file, said once
        register(value, source=None if path is None else str(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        """The secret held by a file; ValueError (one line, without the content) if it
        cannot be read or holds a control character."""
        value, stamp = read_secret_file(Path(path))
        secret = cls(value, Path(path))
        secret._stamp = stamp
        return secret

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = super().__get_pydantic_core_schema__(source, handler)
        return core_schema.no_info_before_validator_function(_clean_input, schema)

    def get_secret_value(self) -> str:
        if self.path is not None:
            self.reload()
        return self._secret_value

    def reload(self) -> bool:
        """Read the file again if it changed; True if the value did."""
        if self.path is None:
            return False
        try:
            if _stamp(self.path) == self._stamp:
                return False
            value, stamp = read_secret_file(self.path)
        except (OSError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ValueError) else f"cannot read {self.path}"
            if isinstance(exc, OSError):
                problem += f": {exc.strerror or type(exc).__name__}"
            if problem != self._problem:
                log.warning("secret file: %s; still using the value read before", problem)
                self._problem = problem
            return False
        self._stamp, self._problem = stamp, None
        if value == self._secret_value:
            return False
        register(value, source=str(self.path))
        self._secret_value = value
        log.info("secret file %s changed: using its new value", self.path)
        return True


def _clean_input(value: Any) -> Any:
    return clean(value) if isinstance(value, str) else value
