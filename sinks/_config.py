"""Route-level settings every sink config shares (`SinkConfig`) and the route filter.

Each sink type's `config.py` subclasses `SinkConfig` with `type: Literal["<name>"]` and its
own fields. `dead_letter` refers to the union of all registered sink configs; the registry
(`sinks/__init__.py`) resolves that reference once every config model is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ByteSize, Field, ValidationInfo, field_validator

from bridge.core.configspec import Duration, RetryConfig, StrictModel, error_at
from bridge.core.event import Format

if TYPE_CHECKING:
    from bridge.core.entry import Entry


ACTIONS = ("Create", "Update", "Delete")
STATES = ("Current", "Replaced", "Deleted")


def _canonical(vocabulary: tuple[str, ...], what: str) -> Any:
    """A validator mapping any casing of a vocabulary word to its PascalCase spelling."""
    by_lower = {word.lower(): word for word in vocabulary}

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the str type check reports it
        word = by_lower.get(value.lower())
        if word is None:
            raise ValueError(f"unknown {what} {value!r} (valid: {', '.join(vocabulary)})")
        return word

    return BeforeValidator(normalise)


MAX_SEQUENCE = 2**63 - 1  # the service's BIGINT identity


def _start_position(value: Any) -> Any:
    """`earliest`, `latest` (any casing) or a sequence number >= 1."""
    if isinstance(value, str) and value.lower() in ("earliest", "latest"):
        return value.lower()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if type(value) is int and 1 <= value <= MAX_SEQUENCE:
        return value
    raise ValueError(f"expected earliest, latest or a sequence number >= 1, got {value!r}")


StartPosition = Annotated[Literal["earliest", "latest"] | int, BeforeValidator(_start_position)]
Action = Annotated[str, _canonical(ACTIONS, "action")]
State = Annotated[str, _canonical(STATES, "state")]


class FilterConfig(StrictModel):
    """Which entries a route delivers. An empty list means no restriction.

    Filtered-out entries still advance the route's cursor.
    """

    actions: list[Action] = Field(
        default_factory=list, description="Deliver only these actions: Create, Update, Delete."
    )
    states: list[State] = Field(
        default_factory=list,
        description="Deliver only entries in these states: Current, Replaced, Deleted.",
    )
    partitions: list[str] = Field(
        default_factory=list, description="Deliver only entries of these data partitions."
    )
    skip_deleted_creates: bool = Field(
        False,
        description="Drop Create entries whose instance was deleted since (state Deleted), "
        "as DICOMcast does.",
    )

    @property
    def restricts(self) -> bool:
        """False when every entry passes (the route can skip calling `admits`)."""
        return bool(self.actions or self.states or self.partitions or self.skip_deleted_creates)

    def admits(self, entry: Entry) -> bool:
        """Whether the route delivers `entry`.

        Poison entries and entries without a state are admitted: what cannot be classified
        is delivered (or dead-lettered) rather than silently dropped.
        """
        if entry.poison:
            return True
        if self.actions and entry.action not in self.actions:
            return False
        if self.partitions and entry.partition not in self.partitions:
            return False
        if entry.state is None:
            return True
        if self.states and entry.state not in self.states:
            return False
        return not (
            self.skip_deleted_creates and entry.action == "Create" and entry.state == "Deleted"
        )


class RouteRetryConfig(RetryConfig):
    """Backoff between attempts after a transient failure of the sink, and an optional
    budget (the feed's retries have none: the feed is never skipped)."""

    max_elapsed: Duration | None = Field(
        None,
        gt=0,
        description="Give up on an event still failing transiently this long after its first "
        "attempt (e.g. 10m): it goes to the dead-letter target with the last reason, as a "
        "permanent failure does (without one, the route stops before it). Unset: retry "
        "without limit, the cursor waiting.",
    )


class SinkConfig(StrictModel):
    """Settings of one route (a sink and its cursor) shared by every sink type."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique route name; the key of the route's cursor in the offset store.",
    )
    type: str = Field(description="Sink type.")
    format: Format = Field(
        "cloudevents",
        description="Event format: cloudevents (CloudEvents 1.0 structured JSON), "
        "cloudevents-binary (the entry as the body, the attributes as message headers: "
        "sinks with headers only), raw (the change-feed entry alone), eventgrid (the event "
        "the Azure DICOM service publishes to Event Grid, Microsoft.HealthcareApis."
        "DicomImageCreated/Updated/Deleted, in the Event Grid schema) or "
        "eventgrid-cloudevents (the same in the CloudEvents schema); see Events.",
    )
    filter: FilterConfig = Field(
        default_factory=FilterConfig, description="Which entries this route delivers."
    )
    dead_letter: AnySinkConfig | None = Field(
        None,
        description="Where entries that fail permanently go, with the reason (a sink config "
        "of any type; `name` optional). Without it, such a failure stops the route, its "
        "cursor kept before the entry.",
    )
    start: StartPosition = Field(
        "earliest",
        description="Where the route starts when it has no cursor yet (a new route, a "
        "new store): earliest (the feed's first entry), latest (only entries written from "
        "now on) or a sequence number (the first entry delivered is the first at or after "
        "it). Logged at WARNING; once the route has committed a cursor it resumes from that.",
    )
    batch_size: int = Field(100, ge=1, description="Events per send.")
    max_in_flight: int = Field(8, ge=1, description="Batches sent concurrently.")
    max_pending: int = Field(
        10000,
        ge=1,
        description="Events admitted but not yet committed; bounds memory while the sink is slow.",
    )
    max_pending_bytes: Annotated[ByteSize, Field(gt=0)] = Field(
        "8MB",
        validate_default=True,
        description="The same bound in bytes (events' encoded size): with metadata in the "
        "entries, memory stays flat whatever their size. One event larger than this is "
        "still admitted, alone.",
    )
    retry: RouteRetryConfig = Field(
        default_factory=RouteRetryConfig,
        description="Backoff between retries of transient failures, and their budget.",
    )

    #: Whether the sink's transport has message headers for CloudEvents binary mode.
    supports_binary: ClassVar[bool] = False

    @property
    def where(self) -> str:
        """Where the sink delivers, for people to read: never holds a secret."""
        return self.type

    @field_validator("format")
    @classmethod
    def _binary_needs_headers(cls, value: str) -> str:
        if value == "cloudevents-binary" and not cls.supports_binary:
            raise ValueError(
                "cloudevents-binary needs a sink with message headers (kafka, nats, "
                "rabbitmq, servicebus, webhook); use cloudevents or raw"
            )
        return value

    @field_validator("dead_letter", mode="before")
    @classmethod
    def _dead_letter_target(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        if value.get("dead_letter") is not None:
            raise error_at("dead_letter", message="a dead_letter target cannot have a dead_letter")
        retry = value.get("retry")
        if isinstance(retry, dict) and retry.get("max_elapsed") is not None:
            raise error_at(
                "retry",
                "max_elapsed",
                message="a dead_letter target retries without limit (it has no dead_letter)",
            )
        return {"name": f"{info.data.get('name', 'route')}.dead_letter", **value}

    @field_validator("max_pending")
    @classmethod
    def _room_for_a_batch(cls, value: int, info: ValidationInfo) -> int:
        batch_size = info.data.get("batch_size")
        if batch_size is not None and value < batch_size:
            raise ValueError(f"must be at least batch_size ({batch_size})")
        return value


if TYPE_CHECKING:
    # The union of every registered sink's config is built by the registry, which imports
    # this module: checkers see the base class, and the registry resolves the name for
    # pydantic (`model_rebuild`) once every sink type is known.
    AnySinkConfig = SinkConfig
