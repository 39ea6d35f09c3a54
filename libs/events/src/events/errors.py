"""How the runtime tells a bad message from a broken dependency.

A broken dependency (the service's own database, the broker) pauses processing and retries in
place forever: dead-lettering would lose work that is fine. Anything else a handler raises is
retried a bounded number of times and then dead-lettered.
"""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy import exc as sa_exc


class UndecodableMessage(Exception):
    """The message is not a valid envelope or event contract: retrying cannot help."""


class PermanentError(Exception):
    """Raised by a handler that knows retrying cannot help: dead-letter at once."""


class InjectedFault(PermanentError):
    """A failure asked for by the `inject_faults` setting (chaos testing)."""


class RetryableError(Exception):
    """Raised by a handler when an outside system failed: retry with backoff, bounded."""


class TransientFault(RetryableError):
    """A first-try failure asked for by the `transient_faults` setting (chaos testing)."""


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)


def is_infrastructure_error(error: BaseException) -> bool:
    if isinstance(error, RetryableError | PermanentError):
        return False
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, INFRASTRUCTURE_ERRORS)


def describe(error: BaseException, *, limit: int = 500) -> str:
    """A short, single-line description of an error for dead letters and failure events."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
