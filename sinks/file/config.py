"""Config of the JSON Lines file sink."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ByteSize, Field

from sinks._config import SinkConfig


class Config(SinkConfig):
    """Append each event as one line to a file, fsynced before it counts as delivered."""

    type: Literal["file"] = Field(description="Sink type.")
    path: Path = Field(
        description="File to append to (parent directories are created); relative paths "
        "are relative to the working directory."
    )
    fsync: bool = Field(
        True,
        description="fsync after each batch, so a delivered event survives a power loss. "
        "Turning it off is faster but a crash can lose events already committed.",
    )
    rotate_bytes: Annotated[ByteSize, Field(gt=0)] | None = Field(
        None,
        description="Start a new file once the current one would exceed this size (e.g. "
        "100MB); full files are renamed <stem>.<N><suffix>, N increasing, never overwritten. "
        "A single batch larger than this still goes to one file.",
    )

    @property
    def where(self) -> str:
        return str(self.path)
