"""How the Service Bus sink classifies what the SDK raises.

- The bridge cannot continue (`SinkFatalError`, the route stops and keeps its cursor):
  the service refused the token (bad SAS key: 401) or the sender (missing Send claim or
  Data Sender role), no Entra ID credential is available, the queue/topic does not exist,
  or it refuses the messages by its settings (`amqp:not-allowed`: `sessions` does not
  match the entity's session setting); also a missing Python package (the async Entra ID
  credentials need an async HTTP transport). A token exchange that merely broke off, or an
  Entra ID endpoint that could not be reached, is transient.
- Worth retrying after at least `quota_retry_after` (`Transient` with that hint, and a
  warning): the entity is full (QuotaExceeded) or disabled. Both need an operator or
  consumers, not a tight retry loop; the route resumes by itself once they are fixed.
- Everything else is `Transient` with the route's backoff: throttling (ServerBusy),
  connection and communication errors, timeouts, unexpected errors.

A batch refused by a partitioned entity with duplicate detection (`amqp:not-allowed` with
Service Bus's "Batching brokered messages with distinct SessionId, PartitionKey, or
MessageId..." or "...must have either PartitionKey or MessageId") is not fatal either: the
sink sends one message per transfer from then on (`refuses_batches`).
`MessageSizeExceededError` is not classified here: the sink splits the batch it came from.
Every reason passes through `bridge.core.redact.scrub` (the configured connection string, its
key, client secrets, and any SAS signature), so no key or token reaches a log line or an
error.
"""

from __future__ import annotations

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus.exceptions import (
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
)

from bridge.core.azure import CredentialError
from bridge.core.redact import scrub
from bridge.core.sink import SinkFatalError, Transient

_FATAL: tuple[type[Exception], ...] = (
    ServiceBusAuthorizationError,
    MessagingEntityNotFoundError,
    ClientAuthenticationError,
)
_FULL = (ServiceBusQuotaExceededError, MessagingEntityDisabledError)
#: What Service Bus answers to a message the entity refuses by its settings (InvalidOperation),
#: e.g. one without a session id sent to a session-enabled queue.
NOT_ALLOWED = "amqp:not-allowed"
#: Words of what a partitioned entity with duplicate detection answers a batch with (the
#: service does not implement batches of distinct messages there), lowercased.
_BATCHES_REFUSED = (
    "batching brokered messages with distinct",
    "partitioned entity with duplicate detection enabled must have",
)


def describe(exc: BaseException) -> str:
    """One line: the error's type and message, secrets removed."""
    message = " ".join(str(exc).split()) or "no details"
    status = _token_status(exc)
    if status is not None:  # the SDK's message drops the service's own explanation
        inner = getattr(exc, "inner_exception", None)
        explanation = getattr(inner, "status_description", None) or b""
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", errors="replace")
        message += f" (token refused with status {status}: {explanation or 'no description'})"
    return scrub(f"{type(exc).__name__}: {message}")


def is_fatal(exc: BaseException) -> bool:
    """A definitive refusal. An authentication error is one only when the service answered
    the token with a 4xx status: the SDK raises the same class when the token exchange
    merely broke off (a dropped connection), which a retry fixes."""
    if isinstance(exc, ServiceBusAuthenticationError):
        return (_token_status(exc) or 0) // 100 == 4
    if isinstance(exc, (*_FATAL, ImportError)) or _condition(exc) == NOT_ALLOWED:
        return True
    inner = _inner(exc)
    if isinstance(inner, CredentialError):
        return inner.refused
    return isinstance(inner, (ClientAuthenticationError, ImportError))


def refuses_batches(exc: BaseException) -> bool:
    """Service Bus refused a batch because the entity is partitioned with duplicate
    detection: the messages must go one per transfer."""
    if _condition(exc) != NOT_ALLOWED:
        return False
    text = " ".join(str(exc).split()).lower()
    return any(words in text for words in _BATCHES_REFUSED)


def fatal_reason(exc: BaseException) -> str:
    """What the operator must fix, before the error itself."""
    if isinstance(exc, MessagingEntityNotFoundError) or _token_status(exc) == 404:
        return "the entity does not exist"
    if refuses_batches(exc):
        return "Service Bus refuses these messages on a partitioned entity"
    if _condition(exc) == NOT_ALLOWED:
        return (
            "Service Bus does not allow these messages (a session-enabled entity needs "
            "`sessions: true`, one without sessions needs it off)"
        )
    if isinstance(exc, ImportError) or isinstance(
        getattr(exc, "inner_exception", None), ImportError
    ):
        return "a Python package the Azure SDK needs is missing"
    if isinstance(exc, ServiceBusAuthorizationError) or _token_status(exc) == 403:
        return "not authorized to send (a SAS policy with Send, or the Data Sender role)"
    return "authentication failed"


def _token_status(exc: BaseException) -> int | None:
    """The status the service answered a refused CBS token with, if that is the cause."""
    status = getattr(getattr(exc, "inner_exception", None), "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def transient(exc: BaseException, quota_retry_after: float) -> Transient:
    """The outcome of a send that failed with `exc`, for every event it carried."""
    reason = describe(exc)
    if isinstance(exc, _FULL):
        return Transient(reason, retry_after=quota_retry_after)
    if isinstance(exc, ServiceBusServerBusyError):
        return Transient(f"throttled by Service Bus: {reason}")
    return Transient(reason)


def _condition(exc: BaseException) -> str | None:
    """The AMQP error condition the SDK kept (as `_condition`: it has no public accessor)."""
    condition = getattr(exc, "_condition", None)
    return str(condition) if condition is not None else None


def fatal(exc: BaseException, where: str) -> SinkFatalError:
    inner = _inner(exc)
    if isinstance(inner, CredentialError):  # already one line naming the identity and cause
        return SinkFatalError(f"{where}: {scrub(str(inner))}")
    return SinkFatalError(f"{where}: {fatal_reason(exc)} ({describe(exc)})")


def _inner(exc: BaseException) -> BaseException | None:
    """What the SDK wrapped: a credential's own error when the token could not be had."""
    return getattr(exc, "inner_exception", None) if isinstance(exc, ServiceBusError) else None


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, _FULL)
