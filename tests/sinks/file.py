"""The file sink's contract harness: a JSON Lines file under the test's temporary directory.

Down is the file's directory moved away and a plain file put in its place (every open,
stat or write under it fails with ENOTDIR); back is the directory where it was, holding
the file the sink has open. The file sink has no permanent and no fatal case: every write failure
is an OSError an operator can fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.sinks.harness import ROUTE, Received, SinkHarness


class Harness(SinkHarness):
    type = "file"
    no_permanent = (
        "a write fails only with an OSError (disk full, permissions) that an operator can "
        "fix: transient, never dead-lettered"
    )
    no_credentials = "a file has no credentials: a permission error is transient"
    no_destination = (
        "a missing directory is created again: a path that cannot be written is transient"
    )

    def start(self, workdir: Path) -> None:
        self.directory = workdir / "out"

    def stop(self) -> None:
        pass

    def reset(self, workdir: Path) -> None:
        self.directory = workdir / "out"
        self.path = self.directory / "events.jsonl"
        self._away = workdir / "out.away"

    def config(self) -> dict[str, Any]:
        return {"name": ROUTE, "type": "file", "path": str(self.path)}

    def received(self) -> list[Received]:
        if not self.path.exists():
            return []
        return [Received(line) for line in self.path.read_bytes().splitlines()]

    def take_down(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.rename(self._away)
        self.directory.write_text("a file where the directory should be\n")

    def bring_back(self) -> None:
        self.directory.unlink()
        self._away.rename(self.directory)
