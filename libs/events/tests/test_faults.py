"""Whose fault a failure is: the message's (bounded retries, then a dead letter) or nobody's
(retried in place), and what an API route answers when its database is away. Real drivers
raise the errors: asyncpg's own exceptions as SQLAlchemy wraps them, and a real connection
to a port where no database listens."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import create_async_engine

from events.errors import (
    PermanentError,
    RetryableError,
    is_database_unavailable,
    is_infrastructure_error,
)
from events.http import HttpMetrics, install_problem_handlers
from events.metrics import RuntimeMetrics

# Nothing listens there: connecting is refused at once.
NO_DATABASE = "postgresql+asyncpg://svc:secret@127.0.0.1:1/nowhere"


def as_sqlalchemy_raises(error: asyncpg.PostgresError) -> sa_exc.DBAPIError:
    """What a session raises when asyncpg raises `error` under it."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)  # type: ignore[no-untyped-call]
    wrapped = sa_exc.DBAPIError.instance(
        "UPDATE t SET n = 1", None, adapted, AsyncAdapt_asyncpg_dbapi.Error
    )
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return wrapped


async def raised_by_the_driver() -> BaseException:
    engine = create_async_engine(NO_DATABASE)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        return error
    finally:
        await engine.dispose()
    raise AssertionError("a database answered on port 1")


async def raised_by_a_handlers_own_deadline() -> BaseException:
    try:
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)
    except TimeoutError as error:
        return error
    raise AssertionError("the deadline did not pass")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
    ],
    ids=["deadlock", "serialization failure"],
)
def test_a_transaction_that_lost_a_race_is_retried_in_place(
    error: asyncpg.PostgresError,
) -> None:
    assert is_infrastructure_error(as_sqlalchemy_raises(error))


def test_a_statement_the_database_rejects_is_the_messages_fault() -> None:
    rejected = as_sqlalchemy_raises(asyncpg.exceptions.DivisionByZeroError("division by zero"))
    assert not is_infrastructure_error(rejected)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients already"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
    ],
    ids=["starting up", "too many connections", "shutting down"],
)
def test_a_database_that_cannot_take_work_now_is_unavailable(
    error: asyncpg.PostgresError,
) -> None:
    assert is_database_unavailable(as_sqlalchemy_raises(error))
    assert is_infrastructure_error(as_sqlalchemy_raises(error))


async def test_a_connection_the_driver_could_not_open_is_infrastructure() -> None:
    error = await raised_by_the_driver()
    assert isinstance(error, ConnectionRefusedError)
    assert is_database_unavailable(error)
    assert is_infrastructure_error(error)


async def test_a_handlers_own_timeout_is_the_handler_failing() -> None:
    error = await raised_by_a_handlers_own_deadline()
    assert not is_database_unavailable(error)
    assert not is_infrastructure_error(error)


def test_a_handlers_own_connection_error_is_the_handler_failing() -> None:
    try:
        raise ConnectionRefusedError("the handler's own socket")
    except ConnectionRefusedError as error:
        assert not is_infrastructure_error(error)


def test_what_a_handler_says_of_its_error_wins() -> None:
    assert not is_infrastructure_error(RetryableError("target down"))
    assert not is_infrastructure_error(PermanentError("never"))


def app_on_a_dead_database() -> tuple[FastAPI, RuntimeMetrics]:
    app, metrics = FastAPI(), RuntimeMetrics.create()
    app.add_middleware(HttpMetrics, metrics=metrics)
    install_problem_handlers(app)
    engine = create_async_engine(NO_DATABASE)

    @app.get("/things")
    async def things() -> list[int]:
        async with engine.connect() as connection:
            return list((await connection.scalars(text("SELECT 1"))).all())

    @app.get("/broken")
    async def broken() -> None:
        raise FileNotFoundError("not the database")

    return app, metrics


async def test_a_route_whose_database_is_down_answers_503_with_retry_after() -> None:
    app, metrics = app_on_a_dead_database()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/things")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["title"] == "Service unavailable"
    assert "secret" not in answer.text
    counted = {"method": "GET", "route": "/things", "status": "503"}
    assert metrics.registry.get_sample_value("http_requests_total", counted) == 1


async def test_an_os_error_that_is_not_the_databases_is_still_a_500() -> None:
    app, _ = app_on_a_dead_database()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/broken")
    assert answer.status_code == 500
    assert answer.json()["title"] == "Internal error"
