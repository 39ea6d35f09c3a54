"""The consume loop: the one place that turns Kafka messages into handler calls.

For each batch from `getmany`, each partition's messages are processed in one database
transaction (partitions side by side, each in order): it records every event id in the inbox
(an id seen before is skipped), runs the handlers and stages what they emit in the outbox.
Offsets are committed only after those transactions commit, so a crash in between redelivers
messages whose ids the inbox already holds: no effect is applied twice.

The fast path runs a batch's handlers without savepoints. If one fails, the transaction is
rolled back and the batch is run again with a savepoint per message, so that failing message
can be retried and dead-lettered alone. Handlers must therefore tolerate running again, which
the inbox cannot spare them anyway for effects outside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import tracing
from events.context import HandlerContext
from events.contracts.processing import ProcessingRetried
from events.envelope import Envelope, Event
from events.errors import (
    InjectedFault,
    PermanentError,
    TransientFault,
    UndecodableMessage,
    describe,
    is_infrastructure_error,
)
from events.logs import request_context
from events.metrics import RuntimeMetrics
from events.outbox import stage, stage_raw
from events.router import Registration, Router
from events.tables import InboxEntry
from events.topics import dead_letter_topic

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1_000_000
_UNDECODABLE_IDS = uuid.UUID("6f1c1d2e-8a51-4d8e-9a59-6f0e0d2b7c11")


@dataclass(frozen=True)
class ConsumerOptions:
    batch_size: int = 200
    max_attempts: int = 4
    retry_backoff_s: float = 0.2
    session_timeout_ms: int = 10_000
    # A stable name of this replica: the consumer is then a static member of its group
    # (KIP-345), and a restarted replica takes its partitions back at once, with no
    # rebalance and no wait for the old member's session to time out.
    group_instance_id: str | None = None
    kafka_timeout_s: float = 15.0
    inject_faults: Mapping[str, str] = field(default_factory=dict)
    transient_faults: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One Kafka message with what the runtime made of it."""

    record: ConsumerRecord[bytes, bytes]
    event_id: uuid.UUID
    envelope: Envelope | None = None
    event: Event | None = None
    registration: Registration | None = None
    undecodable: str | None = None

    @property
    def headers(self) -> tracing.Headers:
        return tracing.decode_kafka_headers(self.record.headers)

    @property
    def request_id(self) -> str | None:
        """For log lines: the Kafka key is the request id, also of an undecodable message."""
        if self.envelope is not None:
            return self.envelope.subject
        return self.record.key.decode(errors="replace") if self.record.key else None


@dataclass(frozen=True)
class _Failure:
    """A handler's first failure on a message, kept to report the retries it took."""

    at: datetime
    error: str


class _HandlerFailed(Exception):
    """A handler failed on the fast path: run the batch again, one savepoint per message."""

    def __init__(self, event_id: uuid.UUID, error: BaseException) -> None:
        super().__init__(describe(error))
        self.event_id = event_id
        self.failure = _Failure(datetime.now(UTC), describe(error))


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap_servers: str,
        session_factory: async_sessionmaker[AsyncSession],
        tracer: Tracer,
        metrics: RuntimeMetrics,
        on_commit: Callable[[], None],
        deps: Any = None,
        options: ConsumerOptions | None = None,
    ) -> None:
        self._service = service
        self._bootstrap_servers = bootstrap_servers
        self._session_factory = session_factory
        self._tracer = tracer
        self._metrics = metrics
        self._on_commit = on_commit
        self._deps = deps
        self._options = options or ConsumerOptions()
        self._router = Router()
        self._stopping = asyncio.Event()
        self.kafka: AIOKafkaConsumer | None = None

    def include_router(self, router: Router) -> None:
        for event_type, registration in router.registrations.items():
            if event_type in self._router.registrations:
                raise ValueError(f"{event_type} already has a handler")
            self._router.registrations[event_type] = registration
        if router.fallback is not None:
            self._router.fallback = router.fallback
            self._router.fallback_topics = router.fallback_topics

    @property
    def topics(self) -> set[str]:
        return self._router.topics()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            kafka = AIOKafkaConsumer(
                *sorted(self.topics),
                bootstrap_servers=self._bootstrap_servers,
                group_id=self._service,
                group_instance_id=self._options.group_instance_id,
                client_id=self._service,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self._options.session_timeout_ms,
                heartbeat_interval_ms=max(self._options.session_timeout_ms // 3, 1000),
                request_timeout_ms=int(self._options.kafka_timeout_s * 1000) + 5000,
            )
            try:
                await asyncio.wait_for(kafka.start(), self._options.kafka_timeout_s)
                self.kafka = kafka
                backoff = 0.5
                await self._consume(kafka)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer paused: %s; retrying in %.1fs", describe(error), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.kafka = None
                try:
                    await asyncio.wait_for(kafka.stop(), self._options.kafka_timeout_s)
                except Exception as error:
                    log.warning("consumer did not stop cleanly: %s", describe(error))

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Finish the batch in hand and commit it; used on SIGTERM."""
        self._stopping.set()

    async def _consume(self, kafka: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await kafka.getmany(timeout_ms=500, max_records=self._options.batch_size)
            if not batches:
                continue
            await asyncio.gather(*(self._process_until_done(batches[tp]) for tp in sorted(batches)))
            await self._commit(kafka, batches)

    async def _commit(
        self,
        kafka: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        try:
            await kafka.commit(offsets)
        except KafkaError as error:
            # The transaction is committed; what comes back after a rebalance is a duplicate
            # that the inbox drops.
            log.warning("offset commit failed: %s", describe(error))

    async def _process_until_done(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        backoff = 0.5
        while True:
            try:
                await self.process(records)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                level = logging.WARNING if is_infrastructure_error(error) else logging.ERROR
                log.log(
                    level, "batch not processed: %s; retrying in %.1fs", describe(error), backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Process one batch in one transaction. Public for tests of crash windows."""
        deliveries = [d for d in map(self._decode, records) if d is not None]
        if not deliveries:
            return
        try:
            outcomes = await self._process_batch(deliveries, isolated=False)
        except _HandlerFailed as failed:
            # The failing message's first try was on the fast path: its retries count it.
            outcomes = await self._process_batch(
                deliveries, isolated=True, failed_before={failed.event_id: failed.failure}
            )
        for delivery, outcome in outcomes:
            self._metrics.messages_processed.labels(self._type_of(delivery), outcome).inc()
            if outcome == "dead_lettered":
                self._metrics.dead_letters.labels(delivery.record.topic).inc()
        self._on_commit()

    async def _process_batch(
        self,
        deliveries: list[Delivery],
        *,
        isolated: bool,
        failed_before: Mapping[uuid.UUID, _Failure] | None = None,
    ) -> list[tuple[Delivery, str]]:
        outcomes = []
        record = deliveries[0].record
        async with (
            # The transaction's own work (inbox, outbox, commit), beside the messages' spans.
            tracing.batch_span(
                self._tracer,
                record.topic,
                record.partition,
                [d.headers for d in deliveries],
                group=self._service,
            ),
            self._session_factory() as session,
            session.begin(),
        ):
            fresh = await self._claim(session, [d.event_id for d in deliveries])
            for delivery in deliveries:
                if delivery.event_id not in fresh:
                    outcomes.append((delivery, "duplicate"))
                    continue
                fresh.discard(delivery.event_id)
                with request_context(delivery.request_id):
                    if delivery.undecodable is not None:
                        self._dead_letter(session, delivery, delivery.undecodable)
                        outcomes.append((delivery, "dead_lettered"))
                    else:
                        failure = (failed_before or {}).get(delivery.event_id)
                        outcome = await self._handle(session, delivery, isolated, failure)
                        outcomes.append((delivery, outcome))
        return outcomes

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Delivery | None:
        synthetic_id = uuid.uuid5(
            _UNDECODABLE_IDS, f"{record.topic}/{record.partition}/{record.offset}"
        )
        try:
            if record.value is None or len(record.value) > MAX_MESSAGE_BYTES:
                raise UndecodableMessage("empty or oversized message")
            try:
                envelope = Envelope.model_validate_json(record.value)
            except ValidationError as error:
                raise UndecodableMessage(f"not a CloudEvents envelope: {error}") from error
            registration = self._router.registrations.get(envelope.type)
            if registration is None:
                if self._router.fallback is None:
                    return None  # an event this service does not react to
                return Delivery(record, envelope.id, envelope)
            return Delivery(
                record,
                envelope.id,
                envelope,
                self._decode_event(envelope, registration),
                registration,
            )
        except UndecodableMessage as error:
            return Delivery(record, synthetic_id, undecodable=describe(error, limit=1000))

    @staticmethod
    def _decode_event(envelope: Envelope, registration: Registration) -> Event:
        event_class = registration.event_class
        if envelope.dataversion != event_class.version:
            raise UndecodableMessage(
                f"{envelope.type} version {envelope.dataversion} is not supported "
                f"(this service reads version {event_class.version})"
            )
        try:
            event = event_class.model_validate(envelope.data)
        except ValidationError as error:
            raise UndecodableMessage(
                f"{envelope.type} does not match its contract: {error}"
            ) from error
        if str(event.request_id) != envelope.subject:
            raise UndecodableMessage("subject does not match the event's request_id")
        return event

    @staticmethod
    async def _claim(session: AsyncSession, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Record ids in the inbox; returns those not seen before."""
        unique = list(dict.fromkeys(event_ids))
        statement = (
            insert(InboxEntry)
            .values([{"event_id": event_id} for event_id in unique])
            .on_conflict_do_nothing()
            .returning(InboxEntry.event_id)
        )
        return set((await session.scalars(statement)).all())

    async def _handle(
        self,
        session: AsyncSession,
        delivery: Delivery,
        isolated: bool,
        failure: _Failure | None = None,
    ) -> str:
        """Run the handler; returns the outcome. Not isolated: the first failure aborts the
        batch. Isolated: retried in a savepoint, then dead-lettered. `failure`: the message
        already failed once, on the fast path."""
        assert delivery.envelope is not None
        envelope, record = delivery.envelope, delivery.record
        # Each message's span has its own parent (the publish span in its headers), so a batch
        # mixing requests keeps every message in its request's trace.
        with self._tracer.start_as_current_span(
            f"process {record.topic}",
            context=tracing.extract(delivery.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                **tracing.message_attributes(record.topic, record.key),
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self._service,
                "messaging.message.id": str(envelope.id),
                "cloudevents.event_type": envelope.type,
                **tracing.request_attributes(envelope.subject, envelope.data),
            },
        ) as span:
            attempt = 0 if failure is None else 1
            while True:
                attempt += 1
                started, outcome = time.perf_counter(), "error"
                try:
                    await self._run_handler(session, delivery, savepoint=isolated, attempt=attempt)
                    outcome = "ok"
                    if failure is not None:
                        self._report_retries(session, delivery, attempt, "succeeded", failure)
                    return "handled"
                except Exception as error:
                    if is_infrastructure_error(error):
                        raise
                    span.record_exception(error)
                    if not isolated:
                        log.warning(
                            "%s %s failed (attempt 1); the batch runs again, a message at a "
                            "time: %s",
                            envelope.type,
                            envelope.id,
                            describe(error),
                        )
                        raise _HandlerFailed(delivery.event_id, error) from error
                    first_at = failure.at if failure is not None else datetime.now(UTC)
                    failure = _Failure(first_at, describe(error))
                    if isinstance(error, PermanentError) or attempt >= self._options.max_attempts:
                        span.set_status(Status(StatusCode.ERROR, describe(error, limit=200)))
                        self._give_up(session, delivery, describe(error))
                        if attempt > 1:
                            self._report_retries(session, delivery, attempt, "gave_up", failure)
                        return "dead_lettered"
                    log.warning(
                        "%s %s failed (attempt %d): %s",
                        envelope.type,
                        envelope.id,
                        attempt,
                        describe(error),
                    )
                    await asyncio.sleep(self._options.retry_backoff_s * 2 ** (attempt - 1))
                finally:
                    self._metrics.handler_duration.labels(envelope.type, outcome).observe(
                        time.perf_counter() - started
                    )

    async def _run_handler(
        self, session: AsyncSession, delivery: Delivery, *, savepoint: bool, attempt: int
    ) -> None:
        assert delivery.envelope is not None
        self._maybe_inject_fault(delivery.envelope, attempt)
        context = HandlerContext(session=session, envelope=delivery.envelope, deps=self._deps)
        async with session.begin_nested() if savepoint else contextlib.nullcontext():
            if delivery.registration is not None:
                await delivery.registration.handler(delivery.event, context)
            elif self._router.fallback is not None:
                await self._router.fallback(delivery.envelope, context)
            for event in context.emitted:
                self._stage_answer(session, event, delivery)

    def _maybe_inject_fault(self, envelope: Envelope, attempt: int) -> None:
        data = json.dumps(envelope.data)
        marker = self._options.inject_faults.get(envelope.type)
        if marker and marker in data:
            raise InjectedFault(f"fault injected at {envelope.type}")
        marker = self._options.transient_faults.get(envelope.type)
        if marker and marker in data and attempt == 1:
            raise TransientFault(f"transient fault injected at {envelope.type}")

    def _report_retries(
        self,
        session: AsyncSession,
        delivery: Delivery,
        attempts: int,
        outcome: Literal["succeeded", "gave_up"],
        failure: _Failure,
    ) -> None:
        """Tell the audit (and whoever follows the request) that handling took retries."""
        assert delivery.envelope is not None
        try:
            request_id = uuid.UUID(delivery.envelope.subject)
        except ValueError:
            return  # not a request's event: nobody's timeline to put it on
        retried = ProcessingRetried(
            request_id=request_id,
            service=self._service,
            handled_type=delivery.envelope.type,
            handled_event_id=delivery.envelope.id,
            attempts=attempts,
            outcome=outcome,
            first_failed_at=failure.at,
            last_error=failure.error,
        )
        self._stage_answer(session, retried, delivery)

    def _give_up(self, session: AsyncSession, delivery: Delivery, reason: str) -> None:
        self._dead_letter(session, delivery, reason)
        registration = delivery.registration
        if registration is not None and registration.on_failure is not None:
            failure = registration.on_failure(delivery.event, reason)
            if failure is not None:
                self._stage_answer(session, failure, delivery)

    def _stage_answer(self, session: AsyncSession, event: Event, answered: Delivery) -> None:
        """Stage an event a delivery gave rise to: it is about the same tenant's request."""
        envelope = answered.envelope
        tenant = envelope.tenant_of_request() if envelope is not None else None
        stage(session, event, source=self._service, tenant=tenant)

    def _dead_letter(self, session: AsyncSession, delivery: Delivery, reason: str) -> None:
        record = delivery.record
        log.error(
            "dead-lettering %s/%d@%d: %s", record.topic, record.partition, record.offset, reason
        )
        stage_raw(
            session,
            topic=dead_letter_topic(self._service),
            key=record.key,
            value=record.value or b"",
            headers=[
                *delivery.headers,
                ("deadletter.reason", reason),
                ("deadletter.topic", record.topic),
                ("deadletter.partition", str(record.partition)),
                ("deadletter.offset", str(record.offset)),
                ("deadletter.consumer_group", self._service),
            ],
        )

    @staticmethod
    def _type_of(delivery: Delivery) -> str:
        return delivery.envelope.type if delivery.envelope is not None else "undecodable"
