"""The image's HEALTHCHECK probes liveness (`/healthz`), not readiness: a throttled feed or
a broker that is down makes the bridge unready, and restarting it would not help."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_the_healthcheck_probes_healthz():
    text = DOCKERFILE.read_text()
    match = re.search(r"^HEALTHCHECK .*?(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    assert match, "no HEALTHCHECK in the Dockerfile"
    healthcheck = match[0]
    assert "http://127.0.0.1:9464/healthz" in healthcheck
    assert "/readyz" not in healthcheck
