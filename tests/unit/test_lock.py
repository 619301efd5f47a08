"""The state lock: one bridge per state, whatever happens to the files under it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.offsets.lock import Locked, state_lock


def config_for(state: Path):
    return parse_config(f"""
feed: {{url: "http://127.0.0.1:9"}}
offsets: {{path: "{state / "offsets.db"}"}}
sinks: [{{name: a, type: file, path: "{state.parent / "a.jsonl"}"}}]
""")


def test_a_second_holder_is_refused_and_the_lock_is_free_again_after(tmp_path):
    config = config_for(tmp_path / "state")
    refused = pytest.raises(Locked, match="cannot move a cursor: another dicom-bridge uses")
    with state_lock(config, "run"), refused, state_lock(config, "move a cursor"):
        pass
    with state_lock(config, "run"):
        pass


def test_deleting_the_state_directory_does_not_release_the_lock(tmp_path):
    config = config_for(tmp_path / "state")
    with state_lock(config, "run"):
        shutil.rmtree(tmp_path / "state")
        with (
            pytest.raises(Locked, match="another dicom-bridge uses this state"),
            state_lock(config, "run"),
        ):
            pass


def test_the_same_state_reached_by_another_path_is_the_same_lock(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "state")
    with state_lock(config_for(tmp_path / "state"), "run"):
        shutil.rmtree(tmp_path / "state")
        (tmp_path / "state").mkdir()
        with pytest.raises(Locked), state_lock(config_for(tmp_path / "link"), "run"):
            pass
