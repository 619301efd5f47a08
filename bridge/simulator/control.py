"""The control API under `/_sim/`: live operations, faults, stats and ground truth.

JSON in, JSON out; errors are `{"error": "..."}` with 400 (bad request), 404 (unknown
UIDs or transaction) or 409 (an instance has a write in flight). Live operations stamp
their rows with the real UTC clock. Rows written by an operation are returned as
`{"sequence", "timestamp", "action", "partitionName", "studyInstanceUid",
"seriesInstanceUid", "sopInstanceUid"}` (no state: an in-flight row has none yet) along
with `txns`, the ids of its transactions still in flight (to commit or roll back). The
routes are listed in `bridge/simulator/README.md`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields
from typing import Any

import orjson
from pydantic import ValidationError

from bridge.simulator.binding import QueryError, bind_latest, parse_query_string
from bridge.simulator.http import JSON, Receive, Send, read_body, respond, respond_chunked
from bridge.simulator.payloads import (
    GapBody,
    Generate,
    InstanceSpec,
    MetadataBody,
    ScopeBody,
    StoreBody,
    TransactionBody,
    UpdateBody,
    merged,
)
from bridge.simulator.registry import NotFound, Patient
from bridge.simulator.simulation import FeedOptions, Service, Simulation
from bridge.simulator.store import Action, Conflict, Transaction
from bridge.simulator.ticks import TICKS_PER_MILLISECOND, format_timestamp, now_ticks

Handler = Callable[[dict[str, Any], dict[str, list[str]]], Any]
_FEED_FIELDS = frozenset(item.name for item in fields(FeedOptions))
# ValueError covers JSON syntax (orjson.JSONDecodeError) and invalid options.
_BAD_REQUEST = (ValueError, TypeError, ValidationError, QueryError)


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status(error: Exception) -> int:
    if isinstance(error, ControlError):
        return error.status
    return 404 if isinstance(error, NotFound) else 409 if isinstance(error, Conflict) else 400


class ControlHandler:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/_sim/health"): lambda body, query: {"status": "ok"},
            ("GET", "/_sim/state"): self.state,
            ("GET", "/_sim/stats"): lambda body, query: self.service.stats.snapshot(),
            ("POST", "/_sim/stats/reset"): self.reset_stats,
            ("GET", "/_sim/faults"): self.faults,
            ("POST", "/_sim/faults"): self.set_faults,
            ("GET", "/_sim/entries"): self.entries,
            ("POST", "/_sim/store"): self.store,
            ("POST", "/_sim/delete"): self.delete,
            ("POST", "/_sim/update"): self.update,
            ("POST", "/_sim/restore"): self.restore,
            ("POST", "/_sim/gap"): self.gap,
            ("POST", "/_sim/commit"): self.commit,
            ("POST", "/_sim/rollback"): self.rollback,
            ("POST", "/_sim/metadata"): self.metadata,
            ("POST", "/_sim/reset"): self.reset,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        handler = self._routes.get((scope["method"], scope["path"].rstrip("/")))
        try:
            if handler is None:
                raise ControlError(404, f"no control route {scope['method']} {scope['path']}")
            raw = await read_body(receive)
            body = orjson.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ControlError(400, "the request body must be a JSON object")
            result = handler(body, parse_query_string(scope["query_string"]))
        except (ControlError, NotFound, Conflict, *_BAD_REQUEST) as exc:
            await respond(send, _status(exc), orjson.dumps({"error": str(exc)}), [JSON])
            return
        if isinstance(result, Iterator):
            await respond_chunked(send, 200, result, [JSON])
        else:
            await respond(send, 200, orjson.dumps(result), [JSON])

    # -- introspection -------------------------------------------------------------------

    def state(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        sim = self.service.sim
        store, registry = sim.store, sim.store.registry
        latest = store.last_committed()
        return {
            "rows": len(store),
            "visible": len(store.time_order),
            "next_sequence": store.next_sequence,
            "latest_sequence": None if latest is None else store.sequence[latest],
            "instances": len(registry),
            "stored_instances": sum(1 for watermark in registry.current if watermark),
            "in_flight": sorted(store.pending),
            "partitions": registry.partitions,
            "feed": asdict(sim.feed),
            "population": asdict(sim.population),
        }

    def entries(self, body: dict[str, Any], query: dict[str, list[str]]) -> Iterator[bytes]:
        """Every visible entry as the feed serves it, by sequence (or `order=time`: as v2).
        Streamed: rows are fixed when the call starts, their states as they are sent."""
        include_metadata = bind_latest(query)
        store = self.service.sim.store
        order = (query.get("order") or ["sequence"])[0]
        if order not in ("sequence", "time"):
            raise ControlError(400, "order must be 'sequence' or 'time'")
        rows = store.visible_rows() if order == "sequence" else store.time_order[:]
        return self.service.sim.renderer.dump(rows, include_metadata)

    def reset_stats(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        self.service.stats.reset()
        return self.service.stats.snapshot()

    def faults(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        faults = self.service.faults
        return {**faults.settings.as_json(), "script": faults.script}

    def set_faults(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """Change some settings; `script` replaces the queue of one-shot faults."""
        changes = dict(body)
        faults = self.service.faults
        if "script" in changes:
            faults.script = list(changes.pop("script"))
        faults.configure(merged(faults.settings, changes), reseed="seed" in changes)
        return self.faults({}, query)

    # -- operations ----------------------------------------------------------------------

    def store(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """STOW: one Create row per new instance, each its own commit; an instance that
        already exists is a duplicate and writes nothing."""
        request = StoreBody.model_validate(body)
        specs = list(request.instances)
        if request.generate is not None:
            specs += self._generated(request.generate)
        if not specs:
            raise ControlError(400, "give instances and/or generate")
        keys = (self._instance(spec) for spec in specs)
        backdate = int(request.backdate_ms * TICKS_PER_MILLISECOND)
        txns, duplicates = self._store_each(keys, backdate, request.in_flight_ms, request.hold)
        return {**self._written(txns), "duplicates": [self._uids(key) for key in duplicates]}

    def restore(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """Store again every deleted instance in scope, with the same UIDs."""
        request = ScopeBody.model_validate(body)
        registry = self.service.sim.store.registry
        keys = [
            key
            for key in registry.resolve(request.scope)
            if not registry.current[key] and registry.watermark[key]
        ]
        if not keys:
            raise NotFound("no deleted instance in scope")
        txns, _ = self._store_each(keys, 0, request.in_flight_ms, request.hold)
        return self._written(txns)

    def delete(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """One Delete row per stored instance in scope, all with one timestamp."""
        request = ScopeBody.model_validate(body)
        sim = self.service.sim
        txn = sim.store.delete(sim.store.registry.resolve(request.scope), now_ticks())
        sim.apply(txn, request.in_flight_ms, request.hold)
        return self._written([txn])

    def update(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """Bulk update: PatientName/PatientID change (generated unless given), one Update row
        per stored instance in scope."""
        request = UpdateBody.model_validate(body)
        sim = self.service.sim
        keys = sim.store.registry.resolve(request.scope)
        if request.patient_name is None and request.patient_id is None:
            patient = sim.catalog.patient()
        else:
            current = sim.store.registry.patient(keys[0])
            patient = Patient(
                request.patient_name or current.name, request.patient_id or current.patient_id
            )
        txn = sim.store.update(keys, now_ticks(), patient)
        sim.apply(txn, request.in_flight_ms, request.hold)
        return self._written([txn])

    def gap(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """Skip sequence values (an IDENTITY cache jump, or rolled-back inserts)."""
        request = GapBody.model_validate(body)
        store = self.service.sim.store
        store.skip(request.count)
        return {"next_sequence": store.next_sequence}

    def commit(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        return self._finish(body, self.service.sim.commit)

    def rollback(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        return self._finish(body, self.service.sim.rollback)

    def metadata(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """Mark (or with `missing: false` restore) the metadata blobs of a scope as lost."""
        request = MetadataBody.model_validate(body)
        registry = self.service.sim.store.registry
        keys = registry.resolve(request.scope)
        if request.missing:
            registry.metadata_missing.update(keys)
        else:
            registry.metadata_missing.difference_update(keys)
        return {"instances": len(keys), "missing": request.missing}

    def reset(self, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """A new feed, populated afresh; omitted options keep their current values."""
        old = self.service.sim
        feed_changes = {name: value for name, value in body.items() if name in _FEED_FIELDS}
        population_changes = {
            name: value for name, value in body.items() if name not in _FEED_FIELDS
        }
        sim = Simulation(merged(old.feed, feed_changes), merged(old.population, population_changes))
        self.service.sim = sim
        old.close()
        return self.state({}, query)

    # -- helpers -------------------------------------------------------------------------

    def _generated(self, generate: Generate) -> list[InstanceSpec]:
        catalog = self.service.sim.catalog
        specs = []
        for _ in range(generate.studies):
            study = catalog.study(generate.partition, now_ticks())
            for _ in range(generate.series):
                series = catalog.series(study)
                specs += [
                    InstanceSpec(partition=generate.partition, study=study.uid, series=series.uid)
                ] * generate.instances
        return specs

    def _instance(self, spec: InstanceSpec) -> int:
        catalog = self.service.sim.catalog
        patient = None
        if spec.patient_name is not None or spec.patient_id is not None:
            patient = catalog.patient(spec.patient_name, spec.patient_id)
        study = catalog.study(spec.partition, now_ticks(), spec.study, patient)
        return catalog.instance(catalog.series(study, spec.series, spec.modality), spec.sop)

    def _store_each(
        self, keys: Iterable[int], backdate: int, in_flight_ms: float, hold: bool
    ) -> tuple[list[Transaction], list[int]]:
        """Store instances one by one: (their transactions, keys that were duplicates).
        If one fails, the call's transactions still in flight are rolled back."""
        sim = self.service.sim
        txns: list[Transaction] = []
        duplicates: list[int] = []
        try:
            for key in keys:
                txn = sim.store.store(key, now_ticks() - backdate)
                if txn is None:
                    duplicates.append(key)
                else:
                    txns.append(txn)
                    sim.apply(txn, in_flight_ms, hold)
        except Exception:
            for txn in txns:
                if txn.id in sim.store.pending:
                    sim.rollback(txn.id)
            raise
        return txns, duplicates

    def _finish(self, body: dict[str, Any], action: Callable[[int], None]) -> dict[str, Any]:
        request = TransactionBody.model_validate(body)
        pending = self.service.sim.store.pending
        ids = sorted(pending) if request.txn is None else [request.txn]
        if request.txn is not None and request.txn not in pending:
            raise NotFound(f"no transaction {request.txn} in flight")
        for txn_id in ids:
            action(txn_id)
        return {"txns": ids}

    def _written(self, txns: list[Transaction]) -> dict[str, Any]:
        store = self.service.sim.store
        return {
            "entries": [self._row(row) for txn in txns for row in txn.rows],
            "txns": [txn.id for txn in txns if txn.id in store.pending],
        }

    def _row(self, row: int) -> dict[str, Any]:
        store = self.service.sim.store
        return {
            "sequence": store.sequence[row],
            "timestamp": format_timestamp(store.timestamp[row]),
            "action": Action(store.action[row]).name.title(),
            **self._uids(store.key[row]),
        }

    def _uids(self, key: int) -> dict[str, str]:
        registry = self.service.sim.store.registry
        series = registry.series_of[key]
        return {
            "partitionName": registry.partitions[series.study.partition],
            "studyInstanceUid": series.study.uid,
            "seriesInstanceUid": series.uid,
            "sopInstanceUid": registry.sop[key],
        }
