"""Hypothesis settings of the fuzz suite.

By default every property runs a small, derandomized number of examples: the whole suite
finishes in well under a minute on 2 cores and gives the same result on every run. For a
long run, `FUZZ_SCALE=N` multiplies every example count by N and draws fresh random
examples each time (failures are then printed with a `@reproduce_failure` blob).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("FUZZ_SCALE", "1")))


def fuzz(examples: int, *, deadline_ms: float | None = 2_000) -> settings:
    """Settings of one property: `examples` examples (times FUZZ_SCALE), each of which
    must finish within `deadline_ms` (a hang fails the property; None for tests whose
    examples start processes)."""
    return settings(
        max_examples=examples * SCALE,
        deadline=deadline_ms,
        derandomize=SCALE == 1,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
