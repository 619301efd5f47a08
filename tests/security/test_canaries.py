"""The scan finds a canary however it was spelled out, and nothing else."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

import pytest

from tests.security import canaries

SECRET = canaries.SAS_KEY  # has characters URL encoding changes: + / =


@pytest.mark.parametrize(
    ("spelled", "form"),
    [
        (f"key={SECRET.value};", "plain"),
        (json.dumps({"message": f"x {SECRET.value}"}), "plain"),
        (f"?key={quote(SECRET.value, safe='')}&", "url-encoded"),
        (urlencode({"key": SECRET.value}), "url-encoded"),
        *(  # the alignment is the length of what precedes it, modulo 3
            (base64.b64encode(prefix + SECRET.value.encode() + b"!").decode(), f"base64@{n}")
            for prefix, n in ((b"", 0), (b"user:", 2), (b"Bearer ", 1))
        ),
    ],
)
def test_every_spelling_of_a_canary_is_found(spelled, form):
    assert canaries.leaks(f"before {spelled} after", [SECRET]) == [f"{SECRET.kind} ({form})"]
    with pytest.raises(AssertionError, match=r"secrets leaked in the test output: .*SharedAccess"):
        canaries.assert_clean(spelled.encode(), "the test output")


def test_text_without_canaries_is_clean():
    masked = "SharedAccessKey=**********; Authorization: Bearer **********"
    canaries.assert_clean(masked, "masked text")
    assert len({canary.value for canary in canaries.ALL}) == len(canaries.ALL)
