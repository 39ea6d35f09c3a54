"""How the runtime tells a bad message from a broken dependency.

A broken dependency (the service's own database, the broker) pauses processing and retries in
place forever: dead-lettering would lose work that is fine. So does a transaction that lost a
race (a deadlock, a serialization failure): nobody's fault, and running it again succeeds.
Anything else a handler raises is retried a bounded number of times and then dead-lettered.
"""

from __future__ import annotations

import sys
from types import TracebackType

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


# SQLAlchemy's own names for a database it cannot reach or lost (the pool's timeout among them).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
BROKER_ERRORS: tuple[type[BaseException], ...] = (KafkaConnectionError, KafkaTimeoutError)
# SQLSTATEs saying the server, not the statement, is the trouble: class 08 (connection
# exception), too many connections, and a server shutting down or starting up.
UNAVAILABLE_SQLSTATES = frozenset({"53300", "57P01", "57P02", "57P03"})
# The transaction lost a race with another: serialization failure, deadlock detected.
LOST_RACE_SQLSTATES = frozenset({"40001", "40P01"})
# The driver lets OS errors through unwrapped (a refused connection, a connect timeout);
# they are the database's or broker's only when raised in these clients' code.
DRIVER_MODULES = frozenset({"asyncpg", "sqlalchemy", "aiokafka"})


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL error code of a driver error, wrapped by SQLAlchemy or not."""
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code if isinstance(code, str) else None


def is_database_unavailable(error: BaseException) -> bool:
    """The database cannot be reached or cannot take work now: nothing the caller did."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, DATABASE_ERRORS):
        return True
    code = sqlstate(error)
    if code is not None and (code.startswith("08") or code in UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(error, OSError) and raised_by_driver(error)


def is_infrastructure_error(error: BaseException) -> bool:
    if isinstance(error, RetryableError | PermanentError):
        return False
    if is_database_unavailable(error) or sqlstate(error) in LOST_RACE_SQLSTATES:
        return True
    # A TimeoutError (an OSError) of a handler's own deadline is the handler failing.
    return isinstance(error, BROKER_ERRORS)


def raised_by_driver(error: BaseException) -> bool:
    """Whether the innermost code outside the standard library that `error` came through is
    a database or broker client's: its frame raised it, or owned the timeout that did."""
    for module in reversed(_modules(error.__traceback__)):
        top = module.partition(".")[0]
        if top in DRIVER_MODULES:
            return True
        if top not in sys.stdlib_module_names:
            return False
    return False


def _modules(traceback: TracebackType | None) -> list[str]:
    modules = []
    while traceback is not None:
        modules.append(str(traceback.tb_frame.f_globals.get("__name__", "")))
        traceback = traceback.tb_next
    return modules


def describe(error: BaseException, *, limit: int = 500) -> str:
    """A short, single-line description of an error for dead letters and failure events."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
