"""Injected failures for the feed routes: latency, 429/500/503, truncated bodies, auth.

Settings change at runtime through the control API. Random faults come from a seeded RNG,
so a single-connection test sees the same faults on every run; a script queues one fault
per upcoming request ("429", "500", "503", "truncate", "disconnect", or "none" to let one
pass) ahead of the random ones, for tests that must not depend on probabilities. The
control routes never fail.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class BodyFault(Enum):
    TRUNCATE = "truncate"  # 200 with the Content-Length of a body cut short
    DISCONNECT = "disconnect"  # the full Content-Length announced, the connection closed mid-body


STATUS_FAULTS = ("429", "500", "503")
SCRIPT_STEPS = (*STATUS_FAULTS, *(fault.value for fault in BodyFault), "none")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate_429: float = 0.0
    retry_after: int = 1  # seconds, sent with every 429
    rate_500: float = 0.0
    rate_503: float = 0.0
    truncate_rate: float = 0.0
    disconnect_rate: float = 0.0
    token: str | None = None  # when set, `Authorization: Bearer <token>` is required
    forbidden: bool = False  # authenticated, but without DataActions.Read: 403
    seed: int = 0

    def __post_init__(self) -> None:
        rates = ("rate_429", "rate_500", "rate_503", "truncate_rate", "disconnect_rate")
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.rate_429 + self.rate_500 + self.rate_503 > 1.0:
            raise ValueError("rate_429 + rate_500 + rate_503 must not exceed 1")
        if self.truncate_rate + self.disconnect_rate > 1.0:
            raise ValueError("truncate_rate + disconnect_rate must not exceed 1")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0 or self.retry_after < 0:
            raise ValueError("latencies and retry_after must not be negative")

    def as_json(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["token"] = None if self.token is None else "********"
        return settings


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one feed request."""

    status: int | None = None
    body: BodyFault | None = None


class Faults:
    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._script: deque[str] = deque()

    def configure(self, settings: FaultSettings, reseed: bool) -> None:
        self.settings = settings
        if reseed:
            self._rng = random.Random(settings.seed)

    @property
    def script(self) -> list[str]:
        return list(self._script)

    @script.setter
    def script(self, steps: list[str]) -> None:
        unknown = [step for step in steps if step not in SCRIPT_STEPS]
        if unknown:
            raise ValueError(f"unknown script steps {unknown}; use {', '.join(SCRIPT_STEPS)}")
        self._script = deque(steps)

    def latency(self) -> float:
        """Seconds to wait before answering."""
        settings = self.settings
        if not settings.latency_ms and not settings.latency_jitter_ms:
            return 0.0
        jitter = settings.latency_jitter_ms
        return max(0.0, settings.latency_ms + self._rng.uniform(-jitter, jitter)) / 1000.0

    def decide(self) -> Decision:
        if self._script:
            step = self._script.popleft()
            if step in STATUS_FAULTS:
                return Decision(status=int(step))
            return Decision(body=None if step == "none" else BodyFault(step))
        settings = self.settings
        draw = self._rng.random()
        for status, rate in (
            (429, settings.rate_429),
            (500, settings.rate_500),
            (503, settings.rate_503),
        ):
            if draw < rate:
                return Decision(status=status)
            draw -= rate
        if settings.truncate_rate or settings.disconnect_rate:
            draw = self._rng.random()
            if draw < settings.truncate_rate:
                return Decision(body=BodyFault.TRUNCATE)
            if draw < settings.truncate_rate + settings.disconnect_rate:
                return Decision(body=BodyFault.DISCONNECT)
        return Decision()

    def cut(self, length: int) -> int:
        """Where to cut a body of `length` bytes: always inside it."""
        return self._rng.randint(1, length - 1) if length > 1 else 0

    def challenge(self, authorization: bytes | None) -> bytes | None:
        """The `WWW-Authenticate` value of a 401, or None when the request may pass."""
        token = self.settings.token
        if token is None:
            return None
        if not authorization:
            return b"Bearer"
        scheme, _, value = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip() == token:
            return None
        return b'Bearer error="invalid_token"'
