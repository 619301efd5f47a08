"""Acceptance: one catch-up of 20,000 entries with metadata through a hostile proxy (a
maintenance window of HTML with 200, JSON objects, truncated bodies, slow-loris answers, gzip
bombs and 300 MiB of junk; see `plan.py`) delivers every entry with the data the feed served,
dead-letters nothing, finishes within 2 minutes, and keeps bridge + helper under 300 MB.

The figures are printed (`pytest -s`, or `python -m tests.hostile` for the same run) and are
the failure message when a bound is missed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import harness
from tests.hostile.plan import DEADLINE, Plan

#: The catch-up's deadline, plus the simulator's start, the checks and the children's grace.
TEST_TIMEOUT = DEADLINE + harness.CHILD_GRACE + 60


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_hostile_feed_loses_nothing_and_stays_within_time_and_memory(tmp_path: Path):
    outcome = harness.run(Plan(), tmp_path)
    print("\n".join(outcome.figures()))
    if outcome.problems():
        pytest.fail(outcome.failure(), pytrace=False)
