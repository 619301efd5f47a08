"""Request bodies of the control API, validated (unknown keys are errors) by pydantic."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bridge.simulator.registry import DEFAULT_PARTITION, Scope


class _Settings(Protocol):
    """A dataclass instance: what `fields` and `asdict` take."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


T = TypeVar("T", bound=_Settings)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _InFlight(_Body):
    in_flight_ms: float = Field(0.0, ge=0)  # commit this long after the call
    hold: bool = False  # stay in flight until POST /_sim/commit (or /_sim/rollback)


class InstanceSpec(_Body):
    """One instance to store; missing UIDs are generated, unknown studies/series created."""

    partition: str = DEFAULT_PARTITION
    study: str | None = None
    series: str | None = None
    sop: str | None = None
    modality: str | None = None  # for a new series
    patient_name: str | None = None  # for a new study
    patient_id: str | None = None


class Generate(_Body):
    """New studies with random UIDs, patients and modalities."""

    studies: int = Field(1, ge=1)
    series: int = Field(1, ge=1)  # per study
    instances: int = Field(1, ge=1)  # per series
    partition: str = DEFAULT_PARTITION


class StoreBody(_InFlight):
    instances: list[InstanceSpec] = []
    generate: Generate | None = None
    backdate_ms: float = Field(0.0, ge=0)  # timestamp taken this long before the commit


class _ScopeFields(_Body):
    """A study, or one of its series, or one instance."""

    partition: str = DEFAULT_PARTITION
    study: str
    series: str | None = None
    sop: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.study, self.series, self.sop, self.partition)


class ScopeBody(_ScopeFields, _InFlight):
    pass


class UpdateBody(ScopeBody):
    patient_name: str | None = None  # default: a newly generated patient
    patient_id: str | None = None


class MetadataBody(_ScopeFields):
    missing: bool = True


class GapBody(_Body):
    count: int = Field(ge=1)


class TransactionBody(_Body):
    txn: int | None = None  # None: every transaction in flight


def merged(current: T, changes: dict[str, Any]) -> T:
    """`current` (a dataclass of settings) with `changes` applied and every field validated."""
    unknown = sorted(set(changes) - {item.name for item in fields(current)})
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    values = {**asdict(current), **changes}
    return TypeAdapter(type(current)).validate_python(values)
