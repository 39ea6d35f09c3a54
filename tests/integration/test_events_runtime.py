"""libs/events against the real broker and database: crash windows, poison, outages."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from sqlalchemy import Integer, MetaData, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.kafka_tools import create_topics, produce, read_topic
from tests.polling import eventually

from devstack import kafka, postgres
from devstack.stack import Stack
from events import (
    Event,
    HandlerContext,
    Router,
    ServiceRuntime,
    ServiceSettings,
    create_service_app,
)
from events.contracts import processing
from events.envelope import Envelope
from events.outbox import stage_raw
from events.tables import OutboxDeadLetter, RuntimeBase
from events.topics import dead_letter_topic

pytestmark = pytest.mark.integration


Fault = Callable[[Event, HandlerContext[None]], Awaitable[None]]


class Base(DeclarativeBase):
    metadata = MetaData()


class Effect(Base):
    """One row per handled ping: a second row for the same ping is an effect applied twice."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID]
    n: Mapped[int]


@dataclass
class Harness:
    stack: Stack
    service: str
    database_url: str
    topic_in: str
    topic_out: str
    pinged: type[Event]
    ponged: type[Event]
    exploded: type[Event]

    def runtime(self, *, fault: Fault | None = None, **settings: object) -> ServiceRuntime:
        """`fault`: awaited first by the handler, to fail it as a test needs."""
        router = Router()
        pinged, ponged, exploded = self.pinged, self.ponged, self.exploded

        def explode(event: Event, reason: str) -> Event:
            return exploded(request_id=event.request_id, reason=reason)

        @router.on(pinged, on_failure=explode)
        async def handle(event: Event, ctx: HandlerContext[None]) -> None:
            if fault is not None:
                await fault(event, ctx)
            n = event.n  # type: ignore[attr-defined]
            if n < 0:
                raise ValueError("negative pings are poison")
            ctx.session.add(Effect(request_id=event.request_id, n=n))
            ctx.emit(ponged(request_id=event.request_id, n=n))

        options = {
            "service_name": self.service,
            "database_url": self.database_url,
            "kafka_bootstrap_servers": self.stack.bootstrap_servers,
            "handler_max_attempts": 2,
            "handler_retry_backoff_s": 0.05,
            "kafka_session_timeout_ms": 6000,
            "consumer_batch_size": 20,
        } | settings
        return ServiceRuntime(ServiceSettings(**options), routers=[router])  # type: ignore[arg-type]

    def ping_event(self, n: int, request_id: uuid.UUID | None = None) -> Event:
        return self.pinged(request_id=request_id or uuid.uuid4(), n=n)  # type: ignore[call-arg]

    def ping(self, n: int, request_id: uuid.UUID | None = None) -> tuple[bytes, bytes]:
        envelope = Envelope.wrap(self.ping_event(n, request_id), source="test")
        return envelope.subject.encode(), envelope.to_bytes()

    async def effects(self) -> list[tuple[uuid.UUID, int]]:
        runtime_engine = make_url(self.database_url)
        connection = await asyncpg.connect(
            host=str(runtime_engine.query["host"]),
            port=int(str(runtime_engine.query["port"])),
            user="postgres",
            database=runtime_engine.database,
        )
        try:
            rows = await connection.fetch("SELECT request_id, n FROM effects ORDER BY id")
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await connection.close()
        return [(row["request_id"], row["n"]) for row in rows]


@pytest.fixture
async def harness(infra: Stack) -> AsyncIterator[Harness]:
    run = uuid.uuid4().hex[:10]
    service, topic_in, topic_out = f"events-it-{run}", f"test.{run}.in", f"test.{run}.out"
    await create_topics(infra.bootstrap_servers, topic_in, topic_out, dead_letter_topic(service))
    admin = await asyncpg.connect(infra.database_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{service}"')
    await admin.close()

    class Pinged(Event):
        type = "test.pinged"
        topic = topic_in
        n: int

    class Ponged(Event):
        type = "test.ponged"
        topic = topic_out
        n: int

    class Exploded(Event):
        type = "test.exploded"
        topic = topic_out
        reason: str

    database_url = make_url(infra.database_url("postgres")).set(database=service)
    url = database_url.render_as_string(hide_password=False)
    # A service of the test's own, with no history of migrations: its tables made directly.
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for metadata in (RuntimeBase.metadata, Base.metadata):
            await connection.run_sync(metadata.create_all)
    await engine.dispose()
    yield Harness(
        infra,
        service,
        url,
        topic_in,
        topic_out,
        Pinged,
        Ponged,
        Exploded,
    )


async def test_crash_between_db_commit_and_offset_commit_applies_nothing_twice(
    harness: Harness,
) -> None:
    pings = [harness.ping(n) for n in range(60)]
    await produce(harness.stack.bootstrap_servers, harness.topic_in, pings)

    crashed = harness.runtime()
    assert crashed.consumer is not None

    async def die_before_committing_offsets(*_: object) -> None:
        raise asyncio.CancelledError  # as if killed: the DB transaction is already committed

    crashed.consumer._commit = die_before_committing_offsets  # type: ignore[method-assign, assignment]
    async with crashed.running():
        await eventually(harness.effects, what="the first batch")
        await asyncio.sleep(1.0)
    processed_before_crash = len(await harness.effects())
    assert 0 < processed_before_crash < len(pings)

    restarted = harness.runtime()
    async with restarted.running():
        await eventually(
            lambda: _at_least(harness.effects, len(pings)), timeout_s=60, what="all pings"
        )
        await asyncio.sleep(1.0)
        duplicates = restarted.metrics.messages_processed.labels("test.pinged", "duplicate")
        # The batch the crashed consumer had committed to the DB came back...
        assert duplicates._value.get() >= processed_before_crash
    # ...and was not applied again, nor its events emitted again.
    effects = await harness.effects()
    assert sorted(n for _, n in effects) == list(range(60))
    out = await read_topic(harness.stack.bootstrap_servers, harness.topic_out, at_least=60)
    assert sorted(json.loads(r.value)["data"]["n"] for r in out) == list(range(60))


async def test_poison_messages_are_dead_lettered_and_the_partition_moves_on(
    harness: Harness,
) -> None:
    request_id = uuid.uuid4()
    key = str(request_id).encode()
    wrong_contract = Envelope.wrap(harness.ping_event(1, request_id), source="test")
    await produce(
        harness.stack.bootstrap_servers,
        harness.topic_in,
        [
            (key, b"\x00 this is not json"),
            (key, _with_data(wrong_contract, {"request_id": str(request_id), "n": "many"})),
            harness.ping(-1, request_id),  # the handler always raises on it
            harness.ping(5, request_id),
        ],
    )
    runtime = harness.runtime()
    async with runtime.running():
        await eventually(harness.effects, what="the good ping after the poison")
    assert [n for _, n in await harness.effects()] == [5]

    dead = await read_topic(
        harness.stack.bootstrap_servers, dead_letter_topic(harness.service), at_least=3
    )
    assert len(dead) == 3
    reasons = [dict(r.headers)["deadletter.reason"].decode() for r in dead]
    assert "not a CloudEvents envelope" in reasons[0]
    assert "does not match its contract" in reasons[1]
    assert "negative pings are poison" in reasons[2]
    assert all(dict(r.headers)["deadletter.topic"].decode() == harness.topic_in for r in dead)
    assert dead[0].value == b"\x00 this is not json"

    out = await read_topic(harness.stack.bootstrap_servers, harness.topic_out, at_least=2)
    types = sorted(json.loads(r.value)["type"] for r in out)
    assert types == ["test.exploded", "test.ponged"]


async def test_retries_are_reported_once_handling_succeeds_or_gives_up(
    harness: Harness,
) -> None:
    flaky, poison = uuid.uuid4(), uuid.uuid4()
    runtime = harness.runtime(transient_faults={"test.pinged": str(flaky)})
    async with runtime.running():
        await produce(
            harness.stack.bootstrap_servers,
            harness.topic_in,
            [harness.ping(3, flaky), harness.ping(-1, poison)],
        )
        await eventually(harness.effects, what="the flaky ping, on its retry")
        await eventually(lambda: _outbox_empty(runtime), what="the reports published")
    assert [n for _, n in await harness.effects()] == [3]

    # The topic is shared with other tests' runtimes: ours are those of our two requests.
    reported = await read_topic(harness.stack.bootstrap_servers, processing.TOPIC, at_least=2)
    ours = {
        data["request_id"]: data
        for data in (json.loads(r.value)["data"] for r in reported)
        if data["request_id"] in (str(flaky), str(poison))
    }
    assert ours[str(flaky)]["outcome"] == "succeeded"
    assert ours[str(flaky)]["attempts"] == 2
    assert "TransientFault" in ours[str(flaky)]["last_error"]
    assert ours[str(poison)]["outcome"] == "gave_up"
    assert ours[str(poison)]["attempts"] == 2
    assert "negative pings are poison" in ours[str(poison)]["last_error"]
    assert {data["service"] for data in ours.values()} == {harness.service}
    assert {data["handled_type"] for data in ours.values()} == {"test.pinged"}


async def test_relay_recovers_after_a_broker_restart(harness: Harness) -> None:
    runtime = harness.runtime()
    request_ids = [uuid.uuid4() for _ in range(20)]

    async def stage(ids: list[uuid.UUID]) -> None:
        async with runtime.transaction() as session:
            for request_id in ids:
                runtime.publish(session, harness.ponged(request_id=request_id, n=1))  # type: ignore[call-arg]

    async with runtime.running():
        await eventually(lambda: _producer_ready(runtime), what="the relay's producer")
        await stage(request_ids[:10])
        await eventually(lambda: _outbox_empty(runtime), what="the first half published")
        await asyncio.to_thread(kafka.stop, harness.stack.config)
        await stage(request_ids[10:])
        await asyncio.sleep(3.0)  # the relay fails and backs off meanwhile
        assert not await _outbox_empty(runtime)
        await asyncio.to_thread(kafka.start, harness.stack.config)
        await eventually(lambda: _outbox_empty(runtime), timeout_s=90, what="the backlog")

    out = await read_topic(harness.stack.bootstrap_servers, harness.topic_out, at_least=20)
    assert {uuid.UUID(json.loads(r.value)["subject"]) for r in out} == set(request_ids)


async def test_database_outage_pauses_processing_and_never_dead_letters(
    harness: Harness,
) -> None:
    runtime = harness.runtime()
    async with runtime.running():
        await produce(harness.stack.bootstrap_servers, harness.topic_in, [harness.ping(1)])
        await eventually(harness.effects, what="the first ping")
        await asyncio.to_thread(postgres.stop, harness.stack.config)
        try:
            await produce(
                harness.stack.bootstrap_servers,
                harness.topic_in,
                [harness.ping(n) for n in range(2, 12)],
            )
            await asyncio.sleep(3.0)
        finally:
            await asyncio.to_thread(postgres.start, harness.stack.config)
        await eventually(
            lambda: _at_least(harness.effects, 11), timeout_s=60, what="pings after the outage"
        )
    assert sorted(n for _, n in await harness.effects()) == list(range(1, 12))
    assert runtime.metrics.dead_letters.labels(harness.topic_in)._value.get() == 0


async def test_a_transaction_that_lost_a_race_is_retried_in_place_and_never_dead_lettered(
    harness: Harness,
) -> None:
    lost = 0

    async def lose_three_races(_: Event, ctx: HandlerContext[None]) -> None:
        nonlocal lost
        if lost < 3:  # more than the 2 attempts a handler's own failure gets
            code = "40001" if lost % 2 else "40P01"  # serialization failure, deadlock
            lost += 1
            await ctx.session.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '{code}'; END $$")
            )

    runtime = harness.runtime(fault=lose_three_races)
    async with runtime.running():
        await produce(harness.stack.bootstrap_servers, harness.topic_in, [harness.ping(7)])
        await eventually(harness.effects, what="the ping, once it won its race")
    assert lost == 3
    assert [n for _, n in await harness.effects()] == [7]
    assert runtime.metrics.dead_letters.labels(harness.topic_in)._value.get() == 0


async def test_a_handlers_own_timeout_is_dead_lettered_and_the_partition_moves_on(
    harness: Harness,
) -> None:
    async def time_out_on_13(event: Event, _: HandlerContext[None]) -> None:
        if event.n == 13:  # type: ignore[attr-defined]
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()

    request_id = uuid.uuid4()  # one key: the good ping waits behind the one that times out
    runtime = harness.runtime(fault=time_out_on_13)
    async with runtime.running():
        await produce(
            harness.stack.bootstrap_servers,
            harness.topic_in,
            [harness.ping(13, request_id), harness.ping(5, request_id)],
        )
        await eventually(harness.effects, what="the ping behind the one that timed out")
    assert [n for _, n in await harness.effects()] == [5]
    dead = await read_topic(
        harness.stack.bootstrap_servers, dead_letter_topic(harness.service), at_least=1
    )
    assert [dict(r.headers)["deadletter.reason"].decode() for r in dead] == ["TimeoutError: "]
    out = await read_topic(harness.stack.bootstrap_servers, harness.topic_out, at_least=2)
    assert sorted(json.loads(r.value)["type"] for r in out) == ["test.exploded", "test.ponged"]


async def test_a_message_kafka_refuses_goes_to_the_outbox_dead_letters_and_the_next_is_sent(
    harness: Harness,
) -> None:
    runtime = harness.runtime(kafka_timeout_s=2.0)  # how long a topic may take to appear
    first, last = uuid.uuid4(), uuid.uuid4()
    missing_topic = f"{harness.topic_out}.missing"  # the test broker creates no topic itself
    async with runtime.running():
        await eventually(lambda: _producer_ready(runtime), what="the relay's producer")
        async with runtime.transaction() as session:
            runtime.publish(session, harness.ponged(request_id=first, n=1))  # type: ignore[call-arg]
            stage_raw(session, topic=missing_topic, key=None, value=b"{}", headers=[])
            too_large = b"x" * 2_000_000  # over the producer's 1 MB request limit
            stage_raw(session, topic=harness.topic_out, key=None, value=too_large, headers=[])
            runtime.publish(session, harness.ponged(request_id=last, n=2))  # type: ignore[call-arg]
        await eventually(lambda: _outbox_empty(runtime), what="the outbox past the refusals")
        async with runtime.session_factory() as session:
            dead = (
                await session.scalars(select(OutboxDeadLetter).order_by(OutboxDeadLetter.outbox_id))
            ).all()
        refused = runtime.metrics.outbox_dead_lettered
    assert [(d.topic, len(d.value), d.reason[:40]) for d in dead] == [
        (missing_topic, 2, "topic does not exist"),
        (harness.topic_out, 2_000_000, "MessageSizeTooLargeError: [Error 10] Mes"),
    ]
    assert refused.labels(missing_topic)._value.get() == 1
    assert refused.labels(harness.topic_out)._value.get() == 1
    out = await read_topic(harness.stack.bootstrap_servers, harness.topic_out, at_least=2)
    assert {uuid.UUID(json.loads(r.value)["subject"]) for r in out} == {first, last}


@pytest.mark.parametrize(("requires_kafka", "status"), [(False, 200), (True, 503)])
async def test_readiness_needs_kafka_only_where_the_service_says_so(
    harness: Harness, requires_kafka: bool, status: int
) -> None:
    runtime = harness.runtime(
        kafka_bootstrap_servers="127.0.0.1:1",  # no broker there
        kafka_timeout_s=1.0,
        readiness_requires_kafka=requires_kafka,
    )
    # Not started: its relay never connects, as when the broker is down, and no background
    # task outlives the test.
    app = create_service_app(runtime, title="readiness")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.get("/readyz")
    finally:
        await runtime.engine.dispose()
    assert answer.status_code == status
    assert answer.json()["checks"]["database"] == "ok"
    assert answer.json()["checks"]["kafka"] != "ok"


async def _at_least(effects, count: int) -> bool:
    return len(await effects()) >= count


async def _producer_ready(runtime: ServiceRuntime) -> bool:
    return runtime.relay.producer is not None


async def _outbox_empty(runtime: ServiceRuntime) -> bool:
    from events.tables import OutboxMessage

    async with runtime.session_factory() as session:
        return (await session.scalar(select(func.count()).select_from(OutboxMessage))) == 0


def _with_data(envelope: Envelope, data: dict[str, object]) -> bytes:
    return envelope.model_copy(update={"data": data}).to_bytes()
