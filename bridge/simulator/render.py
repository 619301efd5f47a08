"""Feed entries as System.Text.Json writes them, built from cached bytes.

An entry is `{"sequence":..,"partitionName":..,["filePath":..,]"studyInstanceUid":..,
"seriesInstanceUid":..,"sopInstanceUid":..,"action":..,"timestamp":..,"state":..
[,"metadata":{..}]}`: camelCase names in declaration order, PascalCase enum values, nulls
omitted. Everything up to and including `state` (the "core") depends only on the row and
its instance's watermark, so it is rendered once and kept in the store's row cache, which
the store clears when the watermark moves. A page is then one `join` of cached cores, plus
the metadata template for entries that carry metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bridge.simulator.metadata import SOP_CLASSES, MetadataTemplate
from bridge.simulator.store import Action, FeedStore, State
from bridge.simulator.ticks import format_timestamp

_ACTIONS: dict[int, str] = {action: action.name.title() for action in Action}  # by code
_STATES = {state: state.name.title() for state in State}
_METADATA = b',"metadata":'
_SEPARATOR = b"},"
_SOP_CLASSES = {modality: uid.encode() for modality, uid in SOP_CLASSES.items()}
DUMP_CHUNK = 10_000


class MetadataMissing(Exception):
    """An entry's metadata blob is gone; the real service fails the whole page with 500."""


class Renderer:
    def __init__(self, store: FeedStore, template: MetadataTemplate, file_path: bool) -> None:
        self._store = store
        self._registry = store.registry
        self._cache = store.cache
        self._slots = store.cache.slots
        self._template = template
        self._file_path = file_path

    def page(self, rows: Sequence[int], include_metadata: bool) -> bytes:
        """A JSON array of the rows' entries; MetadataMissing if one needs a lost blob."""
        if not rows:
            return b"[]"
        entry = self._with_metadata if include_metadata else self._core
        # Entries are rendered without their closing brace: `[e1},e2},...}]`.
        return b"[" + _SEPARATOR.join([entry(row) for row in rows]) + b"}]"

    def dump(self, rows: Sequence[int], include_metadata: bool) -> Iterator[bytes]:
        """Like `page`, for ground-truth dumps of any size: the array in chunks of
        `DUMP_CHUNK` entries, rendered as they are sent, leaving the cache alone. An entry
        whose metadata blob is lost comes without metadata instead of failing."""
        entry = self._dump_with_metadata if include_metadata else self._dump_core
        if not rows:
            yield b"[]"
            return
        for start in range(0, len(rows), DUMP_CHUNK):
            chunk = _SEPARATOR.join([entry(row) for row in rows[start : start + DUMP_CHUNK]])
            yield (b"},", b"[")[start == 0] + chunk
        yield b"}]"

    def entry(self, row: int, include_metadata: bool) -> bytes:
        """One JSON object, as `/changefeed/latest` answers."""
        return (self._with_metadata(row) if include_metadata else self._core(row)) + b"}"

    def metadata(self, key: int) -> bytes:
        """The current version's DICOM JSON of an instance."""
        registry = self._registry
        if key in registry.metadata_missing:
            raise MetadataMissing(key)
        series = registry.series_of[key]
        study = series.study
        patient = registry.patient(key)
        return self._template.render(
            _SOP_CLASSES[series.modality],
            registry.sop[key].encode(),
            study.date,
            study.time,
            study.accession,
            series.modality.encode(),
            patient.name_json,
            patient.id_json,
            study.uid.encode(),
            series.uid.encode(),
            str(series.number).encode(),
            str(registry.number[key]).encode(),
        )

    def _with_metadata(self, row: int) -> bytes:
        """Core plus metadata when the instance has a current version (Current or Replaced)."""
        key = self._store.key[row]
        if not self._registry.current[key]:
            return self._core(row)
        return self._core(row) + _METADATA + self.metadata(key)

    def _core(self, row: int) -> bytes:
        return self._slots[row] or self._cache.put(row, self._render_core(row))

    def _dump_core(self, row: int) -> bytes:
        return self._slots[row] or self._render_core(row)

    def _dump_with_metadata(self, row: int) -> bytes:
        key = self._store.key[row]
        if not self._registry.current[key] or key in self._registry.metadata_missing:
            return self._dump_core(row)
        return self._dump_core(row) + _METADATA + self.metadata(key)

    def _render_core(self, row: int) -> bytes:
        store, registry = self._store, self._registry
        key = store.key[row]
        series = registry.series_of[key]
        partition = registry.partitions[series.study.partition]
        file_path = (
            f',"filePath":"DICOM/{partition}/{key}_{registry.watermark[key]}.dcm"'
            if self._file_path
            else ""
        )
        return (
            f'{{"sequence":{store.sequence[row]},"partitionName":"{partition}"{file_path},'
            f'"studyInstanceUid":"{series.study.uid}","seriesInstanceUid":"{series.uid}",'
            f'"sopInstanceUid":"{registry.sop[key]}","action":"{_ACTIONS[store.action[row]]}",'
            f'"timestamp":"{format_timestamp(store.timestamp[row])}",'
            f'"state":"{_STATES[store.state(row)]}"'
        ).encode()
