"""Writing events to the outbox, and the relay that publishes them to Kafka.

The relay holds a transaction-scoped advisory lock for each batch, so several replicas are
safe and a request's events keep their order: at most one batch is in flight per database.
Every broker call is bounded by a timeout, because an idempotent aiokafka producer can wait
forever for a broker that is gone; after a timeout the producer is replaced and the batch is
retried. A re-sent message is a duplicate that consumers drop by event id.

A message Kafka refuses for good (too large, for a topic that does not exist) would stop the
relay for every message behind it: it is moved to the outbox's dead-letter table instead, in
the batch's transaction, and the relay moves on. A broker that is down is retried in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import tenancy, tracing
from events.envelope import Envelope, Event
from events.errors import describe
from events.metrics import RuntimeMetrics
from events.tables import OutboxDeadLetter, OutboxMessage

log = logging.getLogger(__name__)

RELAY_LOCK = 0x0E7E_0B0C  # any constant: one lock per service database
# What Kafka says of one message that no retry will change (its retriable errors, a timeout
# or a lost connection, are the broker's and are retried in place).
REFUSALS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
)


def stage(
    session: AsyncSession, event: Event, *, source: str, tenant: str | None = None
) -> Envelope:
    """Add `event` to the outbox within the caller's transaction; returns its envelope. Its
    tenant is the event's own, else `tenant`, else the one the transaction acts for."""
    envelope = Envelope.wrap(
        event, source=source, tenant=tenant or session.info.get(tenancy.SESSION_TENANT)
    )
    session.add(
        OutboxMessage(
            topic=event.topic,
            key=envelope.subject.encode(),
            value=envelope.to_bytes(),
            headers=[list(pair) for pair in tracing.inject()],
        )
    )
    return envelope


def stage_raw(
    session: AsyncSession,
    *,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, str]],
) -> None:
    """Add an already-encoded message (a dead letter) to the outbox."""
    session.add(
        OutboxMessage(topic=topic, key=key, value=value, headers=[list(h) for h in headers])
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        bootstrap_servers: str,
        client_id: str,
        tracer: Tracer,
        metrics: RuntimeMetrics,
        batch_size: int = 500,
        send_timeout_s: float = 15.0,
        idle_poll_s: float = 0.25,
    ) -> None:
        self._session_factory = session_factory
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._tracer = tracer
        self._metrics = metrics
        self._batch_size = batch_size
        self._send_timeout_s = send_timeout_s
        self._idle_poll_s = idle_poll_s
        self._wakeup = asyncio.Event()
        self._missing_since: dict[str, float] = {}
        self.producer: AIOKafkaProducer | None = None

    def wake(self) -> None:
        """Publish now rather than at the next poll: something was just committed."""
        self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                self.producer = await self._start_producer()
                backoff = 0.5
                await self._publish_forever(self.producer)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("outbox relay paused: %s; retrying in %.1fs", describe(error), backoff)
                await self._stop_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        await self._stop_producer()

    async def publish_pending_once_quietly(self) -> None:
        """On shutdown: one last bounded attempt, so what was just committed goes out now."""
        try:
            await self.publish_pending()
        except Exception as error:
            log.info("left in the outbox for the next start: %s", describe(error))

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many messages went out (0 if none, or locked)."""
        if self.producer is None:
            return 0
        return await self._publish_batch(self.producer)

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,  # implies acks="all"
            linger_ms=5,
            request_timeout_ms=int(self._send_timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self._send_timeout_s)
        except BaseException:
            await self._bounded_stop(producer)
            raise
        return producer

    async def _stop_producer(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            await self._bounded_stop(producer)

    async def _bounded_stop(self, producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), self._send_timeout_s)
        except Exception as error:
            log.warning("producer did not stop cleanly: %s", describe(error))

    async def _publish_forever(self, producer: AIOKafkaProducer) -> None:
        while True:
            published = await self._publish_batch(producer)
            if published >= self._batch_size:
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._idle_poll_s)

    async def _publish_batch(self, producer: AIOKafkaProducer) -> int:
        async with self._session_factory() as session, session.begin():
            locked = await session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK)))
            if not locked:
                return 0
            rows = (
                await session.scalars(
                    select(OutboxMessage).order_by(OutboxMessage.id).limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            async with asyncio.timeout(self._send_timeout_s):
                refused = await self._send_all(producer, rows)
            if refused:
                await self._dead_letter(session, refused)
            await session.execute(
                delete(OutboxMessage).where(OutboxMessage.id.in_([row.id for row in rows]))
            )
        self._metrics.outbox_published.inc(len(rows) - len(refused))
        for row in refused:
            self._metrics.outbox_dead_lettered.labels(row.topic).inc()
        return len(rows)

    async def _send_all(
        self, producer: AIOKafkaProducer, rows: Sequence[OutboxMessage]
    ) -> dict[OutboxMessage, str]:
        """Send `rows` and wait for the broker's acknowledgements; returns those it refused
        for good, with why. Any other failure raises: the batch is retried."""
        missing = await self._lastingly_missing(producer, {row.topic for row in rows})
        refused = {row: "topic does not exist" for row in rows if row.topic in missing}
        sent: dict[OutboxMessage, asyncio.Future[object]] = {}
        for row in rows:
            if row in refused:
                continue
            try:
                sent[row] = await self._send(producer, row)
            except REFUSALS as error:
                refused[row] = describe(error)
        outcomes = await asyncio.gather(*sent.values(), return_exceptions=True)
        for row, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, REFUSALS):
                refused[row] = describe(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return refused

    async def _lastingly_missing(self, producer: AIOKafkaProducer, topics: set[str]) -> set[str]:
        """Topics still missing a send timeout after first found missing. A topic just
        created is not in every broker's metadata at once: until then, retry in place."""
        missing = await _missing_topics(producer, topics)
        now = asyncio.get_running_loop().time()
        for topic in set(self._missing_since) - missing:
            del self._missing_since[topic]
        lasting = {
            topic
            for topic in missing
            if now - self._missing_since.setdefault(topic, now) >= self._send_timeout_s
        }
        if missing - lasting:
            raise UnknownTopicOrPartitionError(f"not (yet) on the broker: {sorted(missing)}")
        return lasting

    @staticmethod
    async def _dead_letter(session: AsyncSession, refused: dict[OutboxMessage, str]) -> None:
        for row, reason in refused.items():
            # Never the value: a payload may carry what logs must not.
            log.error(
                "outbox message %d for %s (%d bytes) refused by Kafka, dead-lettered: %s",
                row.id,
                row.topic,
                len(row.value),
                reason,
            )
        await session.execute(
            insert(OutboxDeadLetter),
            [
                {
                    "outbox_id": row.id,
                    "topic": row.topic,
                    "key": row.key,
                    "value": row.value,
                    "headers": row.headers,
                    "created_at": row.created_at,
                    "reason": reason,
                }
                for row, reason in refused.items()
            ],
        )

    async def _send(self, producer: AIOKafkaProducer, row: OutboxMessage) -> asyncio.Future[object]:
        """Send one message; its publish span is a child of the transaction that staged it and
        ends when the broker acknowledges it. Consumers continue the trace from the span."""
        stored = [(str(name), str(value)) for name, value in row.headers]
        span = self._tracer.start_span(
            f"publish {row.topic}",
            context=tracing.extract(stored),
            kind=SpanKind.PRODUCER,
            attributes=tracing.publish_attributes(row.topic, row.key, row.value),
        )
        own = [(n, v) for n, v in stored if n not in ("traceparent", "tracestate")]
        headers = tracing.kafka_headers(tracing.inject(own, span))
        try:
            delivery: asyncio.Future[object] = await producer.send(
                row.topic, value=row.value, key=row.key, headers=headers
            )
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()
            raise
        delivery.add_done_callback(functools.partial(tracing.end_on_delivery, span))
        return delivery


async def _missing_topics(producer: AIOKafkaProducer, topics: set[str]) -> set[str]:
    """Topics the broker does not have (topics are created ahead, never automatically). Asked
    only for topics the producer has not seen yet; raises if the broker cannot say."""
    unseen: set[str] = topics - producer.client.cluster.topics()
    if not unseen:
        return set()
    cluster = await producer.client.fetch_all_metadata()
    existing: set[str] = cluster.topics(exclude_internal_topics=False)
    return unseen - existing
