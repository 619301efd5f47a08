"""Where new studies, series and instances come from: UIDs, patients, modalities.

Shared by the seeded population and by live stores through the control API. Everything is
drawn from the `random.Random` handed in, which makes a population byte-identical per seed.
Generated UIDs look like pydicom's `generate_uid()` (a root plus 112 random bits, about 60
characters, collisions negligible), so entries have the size of real ones.
"""

from __future__ import annotations

import random

from bridge.simulator.metadata import MODALITIES
from bridge.simulator.registry import Patient, Registry, Series, Study
from bridge.simulator.ticks import dicom_date_time

UID_ROOT = "1.2.826.0.1.3680043.8.498"
_FAMILY = (
    "Doe", "Smith", "Garcia", "Nguyen", "Muller", "Rossi", "Kowalski", "Okafor",
    "Tanaka", "Silva", "Johansson", "Dubois", "Novak", "Haddad", "Kim", "Oliveira",
)  # fmt: skip
_GIVEN = (
    "Jane", "John", "Maria", "Wei", "Ana", "Luca", "Fatima", "Ivan",
    "Yuki", "Noah", "Amara", "Lars", "Chloe", "Omar", "Mina", "Paulo",
)  # fmt: skip


class Catalog:
    def __init__(self, registry: Registry, rng: random.Random) -> None:
        self.registry = registry
        self.rng = rng
        self._patients = 0
        self._studies = 0

    def uid(self) -> str:
        return f"{UID_ROOT}.{self.rng.getrandbits(112)}"

    def patient(self, name: str | None = None, patient_id: str | None = None) -> Patient:
        """A new patient, generated where not given; bulk updates use one too."""
        self._patients += 1
        return Patient(
            name or f"{self.rng.choice(_FAMILY)}^{self.rng.choice(_GIVEN)}",
            patient_id or f"PID-{self._patients:06d}",
        )

    def study(
        self, partition: str, timestamp: int, uid: str | None = None, patient: Patient | None = None
    ) -> Study:
        """The study `uid` (created if unknown), or a new study with a fresh UID."""
        existing = None if uid is None else self.registry.study(partition, uid)
        if existing is not None:
            return existing
        self._studies += 1
        date, time = dicom_date_time(timestamp)
        return self.registry.add_study(
            partition,
            uid or self.uid(),
            patient or self.patient(),
            date.encode(),
            time.encode(),
            f"ACC{self._studies:07d}".encode(),
        )

    def series(self, study: Study, uid: str | None = None, modality: str | None = None) -> Series:
        """The series `uid` of the study (created if unknown), or a new one."""
        if uid in study.series:
            return study.series[uid]
        if modality is not None and modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; one of {', '.join(MODALITIES)}")
        return self.registry.add_series(
            study, uid or self.uid(), modality or self.rng.choice(MODALITIES), len(study.series) + 1
        )

    def instance(self, series: Series, sop: str | None = None) -> int:
        """The key of instance `sop` of the series (registered if unknown), or of a new one."""
        return self.registry.instance(series, sop or self.uid(), len(series.instances) + 1)
