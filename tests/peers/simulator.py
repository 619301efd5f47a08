"""The change-feed simulator as a real subprocess, with a sync client for its control API.

    with SimulatorProcess(entries=1000, seed=7, token="secret") as sim:
        sim.feed("/v1/changefeed", offset=0, limit=10)      # an httpx.Response
        sim.store(generate={"studies": 1, "instances": 3})  # control API, JSON back
        sim.entries(include_metadata=False)                 # ground truth, parsed

Keyword options become simulator CLI flags (`file_path=True` -> `--file-path`). Control
calls raise `ControlError` (with the status and the simulator's message) unless they succeed.
"""

from __future__ import annotations

from typing import Any, Self

import httpx
import orjson

from bridge.simulator.process import SimulatorSubprocess


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class SimulatorProcess(SimulatorSubprocess):
    def __init__(self, *arguments: str, **options: Any) -> None:
        super().__init__(*arguments, **options)
        self._http: httpx.Client | None = None

    def start(self) -> Self:
        super().start()
        self._http = httpx.Client(base_url=self.url, timeout=30.0)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self._http is not None:
            self._http.close()
            self._http = None
        return super().stop(timeout)

    @property
    def client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the simulator is not running")
        return self._http

    # -- the feed ------------------------------------------------------------------------

    def feed(
        self, path: str, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        """GET a feed path (e.g. `/v2/changefeed`); booleans become `true`/`false`."""
        query = {name: _query_value(value) for name, value in params.items()}
        return self.client.get(path, params=query, headers=headers)

    # -- the control API -----------------------------------------------------------------

    def control(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        response = self.client.request(
            method,
            f"/_sim/{path}",
            content=None if body is None else orjson.dumps(body),
            params={name: _query_value(value) for name, value in params.items()},
        )
        if response.status_code != 200:
            raise ControlError(response.status_code, response.json().get("error", response.text))
        return response.json()

    def state(self) -> dict[str, Any]:
        return self.control("GET", "state")

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def reset_stats(self) -> dict[str, Any]:
        return self.control("POST", "stats/reset")

    def faults(self) -> dict[str, Any]:
        return self.control("GET", "faults")

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        return self.control("POST", "faults", settings)

    def entries_bytes(self, include_metadata: bool = False, order: str = "sequence") -> bytes:
        response = self.client.get(
            "/_sim/entries",
            params={"includeMetadata": _query_value(include_metadata), "order": order},
        )
        response.raise_for_status()
        return response.content

    def entries(
        self, include_metadata: bool = False, order: str = "sequence"
    ) -> list[dict[str, Any]]:
        """Every visible entry as the feed serves it (ground truth)."""
        return orjson.loads(self.entries_bytes(include_metadata, order))

    def store(self, **body: Any) -> dict[str, Any]:
        """`instances=[{"study": ..}]` and/or `generate={"studies": 1, ..}`; also
        `in_flight_ms`, `hold`, `backdate_ms`."""
        return self.control("POST", "store", body)

    def delete(
        self, study: str, series: str | None = None, sop: str | None = None, **options: Any
    ) -> dict[str, Any]:
        return self.control("POST", "delete", _scope(study, series, sop, options))

    def update(
        self, study: str, series: str | None = None, sop: str | None = None, **options: Any
    ) -> dict[str, Any]:
        return self.control("POST", "update", _scope(study, series, sop, options))

    def restore(
        self, study: str, series: str | None = None, sop: str | None = None, **options: Any
    ) -> dict[str, Any]:
        return self.control("POST", "restore", _scope(study, series, sop, options))

    def set_metadata_missing(
        self, study: str, series: str | None = None, sop: str | None = None, missing: bool = True
    ) -> dict[str, Any]:
        return self.control("POST", "metadata", _scope(study, series, sop, {"missing": missing}))

    def gap(self, count: int) -> dict[str, Any]:
        return self.control("POST", "gap", {"count": count})

    def commit(self, txn: int | None = None) -> dict[str, Any]:
        return self.control("POST", "commit", {"txn": txn})

    def rollback(self, txn: int | None = None) -> dict[str, Any]:
        return self.control("POST", "rollback", {"txn": txn})

    def reset(self, **options: Any) -> dict[str, Any]:
        return self.control("POST", "reset", options)


def _scope(
    study: str, series: str | None, sop: str | None, options: dict[str, Any]
) -> dict[str, Any]:
    scope = {"study": study, "series": series, "sop": sop}
    return {**{name: value for name, value in scope.items() if value is not None}, **options}


def _query_value(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value
