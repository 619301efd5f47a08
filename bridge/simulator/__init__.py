"""A faithful local stand-in for the DICOM change feed of Microsoft's DICOM server and the
Azure Health Data Services DICOM service (docs/changefeed.md), so the bridge and its
tests run without Azure.

Feed routes: `GET /v1.0-prerelease|/v1|/v2` + `/changefeed` and `/changefeed/latest`, with
the real service's paging, ordering, validation (plain-text 400s), serialization, states,
metadata rules, in-flight visibility and error codes. Faults (latency, 429/500/503,
truncated bodies, 401/403) are injected on these routes only.

Control API (JSON, never faulted), documented in README.md beside this file:
    GET  /_sim/health, /_sim/state, /_sim/stats, /_sim/faults,
         /_sim/entries?includeMetadata=&order=sequence|time   (ground truth)
    POST /_sim/store, /_sim/delete, /_sim/update, /_sim/restore  (live operations,
         optionally in flight: in_flight_ms / hold), /_sim/commit, /_sim/rollback,
         /_sim/gap, /_sim/metadata, /_sim/faults, /_sim/stats/reset, /_sim/reset

Modules: `store` (rows, operations, transactions, queries) over `registry` (instances and
watermarks); `render`, `rowcache`, `metadata`, `ticks` (bytes on the wire); `binding` and
`timeparse` (query validation); `population` and `catalog` (seeded history); `simulation`
(one service instance, in-flight commits); `feed`, `control` + `payloads`, `faults`,
`stats`, `http`, `app`, `server`, `cli` (serving); `process` (running it as a subprocess).
"""
