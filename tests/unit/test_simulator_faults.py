"""Fault decisions: scripted, seeded-random, auth challenges."""

from __future__ import annotations

from collections import Counter

import pytest

from bridge.simulator.faults import BodyFault, Decision, Faults, FaultSettings


def test_no_faults_by_default() -> None:
    faults = Faults(FaultSettings())
    assert {faults.decide() for _ in range(100)} == {Decision()}
    assert faults.latency() == 0.0
    assert faults.challenge(None) is None


def test_a_script_applies_one_step_per_request_before_random_faults() -> None:
    faults = Faults(FaultSettings(rate_503=1.0))
    faults.script = ["429", "none", "truncate", "disconnect", "500"]
    decisions = [faults.decide() for _ in range(6)]
    assert decisions == [
        Decision(status=429),
        Decision(),
        Decision(body=BodyFault.TRUNCATE),
        Decision(body=BodyFault.DISCONNECT),
        Decision(status=500),
        Decision(status=503),
    ]
    assert faults.script == []
    with pytest.raises(ValueError, match="unknown script steps"):
        faults.script = ["404"]


def test_random_faults_follow_their_rates_and_the_seed() -> None:
    settings = FaultSettings(rate_429=0.2, rate_500=0.1, truncate_rate=0.3, seed=9)
    first, second = Faults(settings), Faults(settings)
    decisions = [first.decide() for _ in range(2000)]
    assert decisions == [second.decide() for _ in range(2000)]
    counts = Counter(decision.status or decision.body for decision in decisions)
    assert 300 < counts[429] < 500
    assert 130 < counts[500] < 270
    assert counts[503] == 0
    assert 350 < counts[BodyFault.TRUNCATE] < 600  # 30% of the 70% not failed


def test_reseeding_restarts_the_sequence() -> None:
    faults = Faults(FaultSettings(rate_500=0.5, seed=1))
    first = [faults.decide() for _ in range(50)]
    faults.configure(FaultSettings(rate_500=0.5, seed=1), reseed=True)
    assert [faults.decide() for _ in range(50)] == first


def test_latency_stays_within_the_jitter() -> None:
    faults = Faults(FaultSettings(latency_ms=50, latency_jitter_ms=10))
    delays = [faults.latency() for _ in range(200)]
    assert all(0.040 <= delay <= 0.060 for delay in delays)
    assert len(set(delays)) > 100


def test_cuts_fall_strictly_inside_the_body() -> None:
    faults = Faults(FaultSettings())
    assert {faults.cut(3) for _ in range(100)} == {1, 2}


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, b"Bearer"),
        (b"", b"Bearer"),
        (b"Bearer wrong", b'Bearer error="invalid_token"'),
        (b"Basic secret", b'Bearer error="invalid_token"'),
        (b"Bearer secret", None),
        (b"bearer secret", None),
    ],
)
def test_a_token_must_be_presented_as_a_bearer(
    authorization: bytes | None, challenge: bytes | None
) -> None:
    assert Faults(FaultSettings(token="secret")).challenge(authorization) == challenge


@pytest.mark.parametrize(
    "settings",
    [
        {"rate_429": 1.5},
        {"rate_500": 0.6, "rate_503": 0.6},
        {"truncate_rate": 0.6, "disconnect_rate": 0.6},
        {"latency_ms": -1},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultSettings(**settings)  # type: ignore[arg-type]


def test_the_token_is_not_shown() -> None:
    assert FaultSettings(token="secret").as_json()["token"] == "********"
