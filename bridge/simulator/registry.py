"""Instances, keyed by (partition, study, series, SOP), with their watermarks.

A million feed rows mean hundreds of thousands of instances, so per-instance data lives in
parallel arrays indexed by an integer instance key; studies and series (far fewer) are small
slotted objects that hold the lookup dicts. Keys are never removed: a deleted instance keeps
its key (current watermark 0), so a re-store with the same UIDs finds the rows it replaces.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass

DEFAULT_PARTITION = "Microsoft.Default"
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_PARTITION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class NotFound(LookupError):
    """The scope names no instance (the real service answers 404)."""


def check_uid(uid: str) -> str:
    """DICOM UIDs are spliced into JSON unescaped, so only valid ones get in."""
    if len(uid) > 64 or not _UID.fullmatch(uid):
        raise ValueError(f"invalid DICOM UID: {uid!r}")
    return uid


def check_partition(name: str) -> str:
    if not _PARTITION.fullmatch(name):
        raise ValueError(f"invalid partition name: {name!r}")
    return name


class Study:
    __slots__ = ("accession", "date", "partition", "patient", "series", "time", "uid")

    def __init__(
        self, partition: int, uid: str, patient: Patient, date: bytes, time: bytes, accession: bytes
    ) -> None:
        self.partition = partition
        self.uid = uid
        self.patient = patient
        self.date = date
        self.time = time
        self.accession = accession
        self.series: dict[str, Series] = {}


class Series:
    __slots__ = ("instances", "modality", "number", "study", "uid")

    def __init__(self, study: Study, uid: str, modality: str, number: int) -> None:
        self.study = study
        self.uid = uid
        self.modality = modality
        self.number = number
        self.instances: dict[str, int] = {}  # SOP Instance UID -> instance key


class Patient:
    """PatientName and PatientID, with their JSON encodings kept for the metadata template."""

    __slots__ = ("id_json", "name", "name_json", "patient_id")

    def __init__(self, name: str, patient_id: str) -> None:
        self.name = name
        self.patient_id = patient_id
        # json, not orjson: orjson's small results keep a large buffer, and there is one
        # patient per study.
        self.name_json = json.dumps(name).encode()
        self.id_json = json.dumps(patient_id).encode()


@dataclass(frozen=True, slots=True)
class Scope:
    """A study, one of its series, or one instance, as delete and bulk update address them."""

    study: str
    series: str | None = None
    sop: str | None = None
    partition: str = DEFAULT_PARTITION


class Registry:
    def __init__(self, partitions: list[str]) -> None:
        self.partitions = [check_partition(name) for name in partitions]
        self._partition_index = {name: index for index, name in enumerate(self.partitions)}
        self._studies: dict[tuple[int, str], Study] = {}
        self.series_of: list[Series] = []
        self.sop: list[str] = []
        self.number = array("q")
        self.watermark = array("q")  # the latest version's watermark, kept after a delete
        self.current = array("q")  # the current watermark; 0 while not (or no longer) created
        self.last_row = array("q")  # newest feed row of the instance, -1 before its first
        self.patient_override: dict[int, Patient] = {}  # set by bulk updates
        self.metadata_missing: set[int] = set()
        self.locked: set[int] = set()  # instances of a transaction still in flight
        self._next_watermark = 1

    def __len__(self) -> int:
        return len(self.sop)

    def partition_index(self, name: str) -> int:
        try:
            return self._partition_index[name]
        except KeyError:
            raise NotFound(f"unknown partition {name!r}") from None

    def next_watermark(self) -> int:
        watermark = self._next_watermark
        self._next_watermark += 1
        return watermark

    def study(self, partition: str, uid: str) -> Study | None:
        return self._studies.get((self.partition_index(partition), uid))

    def add_study(
        self, partition: str, uid: str, patient: Patient, date: bytes, time: bytes, accession: bytes
    ) -> Study:
        index = self.partition_index(partition)
        study = Study(index, check_uid(uid), patient, date, time, accession)
        self._studies[(index, uid)] = study
        return study

    @staticmethod
    def add_series(study: Study, uid: str, modality: str, number: int) -> Series:
        series = Series(study, check_uid(uid), modality, number)
        study.series[uid] = series
        return series

    def instance(self, series: Series, sop: str, number: int) -> int:
        """The key of (series, sop), registering a new, not yet created instance if needed."""
        key = series.instances.get(sop)
        if key is None:
            key = len(self.sop)
            series.instances[check_uid(sop)] = key
            self.series_of.append(series)
            self.sop.append(sop)
            self.number.append(number)
            self.watermark.append(0)
            self.current.append(0)
            self.last_row.append(-1)
        return key

    def resolve(self, scope: Scope) -> list[int]:
        """Every instance key under the scope, created or not; NotFound if the UIDs are unknown."""
        study = self.study(scope.partition, scope.study)
        if study is None:
            raise NotFound(f"study {scope.study} not found")
        if scope.series is None:
            return [key for series in study.series.values() for key in series.instances.values()]
        series = study.series.get(scope.series)
        if series is None:
            raise NotFound(f"series {scope.series} not found")
        if scope.sop is None:
            return list(series.instances.values())
        key = series.instances.get(scope.sop)
        if key is None:
            raise NotFound(f"instance {scope.sop} not found")
        return [key]

    def patient(self, key: int) -> Patient:
        """The instance's current PatientName/PatientID: a bulk update's, else its study's."""
        return self.patient_override.get(key) or self.series_of[key].study.patient
