"""Config of the stdout sink: nothing beyond the route settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sinks._config import SinkConfig


class Config(SinkConfig):
    """Write each event as one line on standard output."""

    type: Literal["stdout"] = Field(description="Sink type.")
