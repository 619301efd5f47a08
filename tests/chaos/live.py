"""Changes written while the bridge runs: new studies (some committing late, so v1 reads
block on them), bulk updates, deletes and re-stores, from a background thread."""

from __future__ import annotations

import random
import threading
from typing import Self

from tests.peers.simulator import ControlError, SimulatorProcess


class LiveWriter:
    def __init__(self, sim: SimulatorProcess, seed: int, interval: float = 0.2) -> None:
        self.sim = sim
        self.interval = interval
        self.operations = 0
        self._random = random.Random(seed)
        self._instances: list[tuple[str, str, str]] = []  # stored, not deleted
        self._deleted: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self._one()
                    self.operations += 1
                except ControlError as exc:
                    if exc.status != 409:  # an instance of the scope still in flight
                        raise
        except BaseException as exc:  # re-raised by __exit__
            self._error = exc

    def _one(self) -> None:
        draw = self._random.random()
        if draw < 0.5 or not self._instances:
            late = {"in_flight_ms": 300} if draw < 0.1 else {}
            written = self.sim.store(generate={"studies": 1, "series": 1, "instances": 4}, **late)
            self._instances += [
                (e["studyInstanceUid"], e["seriesInstanceUid"], e["sopInstanceUid"])
                for e in written["entries"]
            ]
            return
        if draw < 0.7:
            self.sim.update(self._random.choice(self._instances)[0])
        elif draw < 0.85 or not self._deleted:
            instance = self._instances.pop(self._random.randrange(len(self._instances)))
            self.sim.delete(*instance)
            self._deleted.append(instance)
        else:
            instance = self._deleted.pop(self._random.randrange(len(self._deleted)))
            self.sim.restore(*instance)
            self._instances.append(instance)
