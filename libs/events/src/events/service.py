"""What every service is made of: engine, consumer, outbox relay, tracing, metrics, ops routes.

A service's `create_app()` builds one `ServiceRuntime`, includes its routers and enters
`runtime.running()` in its lifespan. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from events import migrations, tenancy, tracing
from events.api_docs import operation_id, serve_docs
from events.consumer import Consumer
from events.envelope import Envelope, Event
from events.errors import describe
from events.http import BodySizeLimit, HttpMetrics, bind_request_id, install_problem_handlers
from events.lag import LagMonitor
from events.logs import configure_logging
from events.metrics import RuntimeMetrics
from events.migrations import Schema
from events.openapi import document_problems
from events.outbox import OutboxRelay, stage
from events.router import Router
from events.settings import ServiceSettings
from events.tables import OutboxMessage

log = logging.getLogger(__name__)

# Work a service does at start, before it consumes anything (seeding configuration).
Prepare = Callable[[AsyncSession], Awaitable[None]]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        schema: Schema | None = None,
        routers: Sequence[Router] = (),
        deps: Any = None,
        metrics: RuntimeMetrics | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """`schema`: the service's database and its migrations, which are applied before it
        starts (see `events.migrations`). `metrics`: given when the service registers metrics
        of its own in its registry before the runtime exists (its handlers' dependencies
        observe them). `tracer_provider`: likewise, when clients built before the runtime
        trace with it (the deployer's drivers)."""
        self.settings = settings
        self.service = settings.service_name
        self.tenant_role = tenancy.tenant_role(self.service)
        configure_logging(self.service)
        self.engine = create_async_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=True,
            hide_parameters=True,  # error messages must not carry values, secrets among them
        )
        self.session_factory = async_sessionmaker(self.engine, expire_on_commit=False)
        self.metrics = metrics or RuntimeMetrics.create()
        self.tracer_provider = tracer_provider or tracing.create_tracer_provider(
            self.service, settings.traces_dir
        )
        self.tracer = tracing.tracer_of(self.tracer_provider)
        tracing.instrument_engine(self.engine, self.tracer_provider)
        self.schema = schema
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._periodic: list[tuple[str, float, Callable[[AsyncSession], Awaitable[None]]]] = []
        self.relay = OutboxRelay(
            session_factory=self.session_factory,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=self.service,
            tracer=self.tracer,
            metrics=self.metrics,
            batch_size=settings.relay_batch_size,
            send_timeout_s=settings.kafka_timeout_s,
        )
        self.consumer: Consumer | None = None
        if routers:
            self.consumer = Consumer(
                service=self.service,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                session_factory=self.session_factory,
                tracer=self.tracer,
                metrics=self.metrics,
                on_commit=self.relay.wake,
                deps=deps,
                options=settings.consumer_options(),
            )
            for router in routers:
                self.consumer.include_router(router)
        self.lag = LagMonitor(
            group=self.service,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            metrics=self.metrics,
            timeout_s=settings.kafka_timeout_s,
        )

    @contextlib.asynccontextmanager
    async def running(self, prepare: Prepare | None = None) -> AsyncIterator[None]:
        """Wait for the schema to be current, run `prepare` in a transaction, then the relay
        and the consumer; on exit stop them in order."""
        if self.schema is not None:
            await migrations.wait_until_current(self.engine, self.schema)
        if prepare is not None:
            async with self.transaction() as session:
                await prepare(session)
        relay_task = asyncio.create_task(self.relay.run(), name=f"{self.service}-relay")
        metrics_task = asyncio.create_task(
            self._refresh_metrics_forever(), name=f"{self.service}-metrics"
        )
        periodic_tasks = [
            asyncio.create_task(self._every(interval_s, work), name=f"{self.service}-{name}")
            for name, interval_s, work in self._periodic
        ]
        consumer_task = (
            asyncio.create_task(self.consumer.run(), name=f"{self.service}-consumer")
            if self.consumer
            else None
        )
        try:
            yield
        finally:
            for task in [*periodic_tasks, metrics_task]:
                await _finish(task, timeout_s=0)
            await self.lag.close()
            if self.consumer is not None and consumer_task is not None:
                await self.consumer.stop()
                await _finish(consumer_task, timeout_s=20.0)
            await self.relay.publish_pending_once_quietly()
            await _finish(relay_task, timeout_s=0)
            await self.relay.stop()
            for cleanup in reversed(self._cleanups):
                with contextlib.suppress(Exception):
                    await cleanup()
            await self.engine.dispose()
            self.tracer_provider.shutdown()

    def add_periodic(
        self, name: str, interval_s: float, work: Callable[[AsyncSession], Awaitable[None]]
    ) -> None:
        """Run `work` every `interval_s` in its own transaction (a sweeper, a clock). Work
        that several replicas may run at once must claim its rows (SKIP LOCKED)."""
        self._periodic.append((name, interval_s, work))

    async def _every(
        self, interval_s: float, work: Callable[[AsyncSession], Awaitable[None]]
    ) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with self.transaction() as session:
                    await work(session)
            except Exception as error:
                log.warning("periodic work failed, retried next round: %s", describe(error))

    async def refresh_metrics(self) -> None:
        """Metrics read rather than counted: the outbox's backlog and its oldest message's
        age (from the database, whether or not the relay can reach Kafka), and consumer lag."""
        async with asyncio.timeout(self.settings.kafka_timeout_s), self.session_factory() as db:
            backlog = await db.scalar(select(func.count()).select_from(OutboxMessage))
            oldest = await db.scalar(
                select(func.extract("epoch", func.now() - OutboxMessage.created_at))
                .order_by(OutboxMessage.id)
                .limit(1)
            )
        self.metrics.outbox_backlog.set(backlog or 0)
        self.metrics.outbox_oldest_age.set(max(float(oldest or 0), 0.0))
        if self.consumer is not None:
            await self.lag.refresh(self.consumer.kafka)

    async def _refresh_metrics_forever(self) -> None:
        failing = False
        while True:
            try:
                await self.refresh_metrics()
                if failing:
                    log.info("metrics refreshed again")
                failing = False
            except Exception as error:
                # Once per outage: the consumer and relay already say what is broken.
                if not failing:
                    log.warning("metrics not refreshed: %s", describe(error))
                failing = True
            await asyncio.sleep(self.settings.metrics_refresh_s)

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Close something the service opened (pools, engines) when it stops."""
        self._cleanups.append(cleanup)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work for API routes: commits on success, then wakes the relay."""
        async with self.session_factory() as session, session.begin():
            yield session
        self.relay.wake()

    @contextlib.asynccontextmanager
    async def tenant_transaction(self, tenant: str) -> AsyncIterator[AsyncSession]:
        """A unit of work for an API route acting for `tenant`: row-level security hides and
        refuses every other tenant's rows (see `events.tenancy`)."""
        async with self.transaction() as session:
            await tenancy.enter_tenant(session, self.tenant_role, tenant)
            yield session

    def publish(self, session: AsyncSession, event: Event) -> Envelope:
        """Stage `event` in the outbox of the caller's transaction."""
        return stage(session, event, source=self.service)

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[trace.Span]:
        return self.tracer.start_as_current_span(name, attributes=attributes)

    async def check_ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2.0), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = describe(error, limit=200)
        producer = self.relay.producer
        if producer is None:
            checks["kafka"] = "producer not connected"
        else:
            try:
                async with asyncio.timeout(2.0):
                    await producer.client.fetch_all_metadata()
                checks["kafka"] = "ok"
            except Exception as error:
                checks["kafka"] = describe(error, limit=200) or "unreachable"
        return checks

    def required_checks(self) -> list[str]:
        """The checks /readyz fails on; the others are reported only."""
        return ["database", "kafka"] if self.settings.readiness_requires_kafka else ["database"]

    def ops_router(self) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @router.get(
            "/readyz",
            response_model=Readiness,
            responses={503: {"model": Readiness, "description": "Not ready: see `checks`"}},
        )
        async def readyz() -> JSONResponse:
            checks = await self.check_ready()
            ready = all(checks[name] == "ok" for name in self.required_checks())
            return JSONResponse(
                {"ready": ready, "checks": checks}, status_code=200 if ready else 503
            )

        @router.get(
            "/metrics",
            response_class=Response,
            responses={
                200: {
                    "description": "Prometheus text exposition format",
                    "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                }
            },
        )
        async def metrics() -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return router


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    prepare: Prepare | None = None,
    own_error_format: Sequence[str] = (),
) -> FastAPI:
    """A FastAPI app with the shared conventions: problem details, body cap, ops routes."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(prepare):
            yield

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        dependencies=[Depends(bind_request_id)],
        generate_unique_id_function=operation_id,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)
    # Outside the body cap, so that its 413 answers are counted too.
    app.add_middleware(HttpMetrics, metrics=runtime.metrics)
    install_problem_handlers(app)
    app.include_router(runtime.ops_router())
    for router in routers:
        app.include_router(router)
    app.state.runtime = runtime
    tracing.instrument_app(app, runtime.tracer_provider)
    serve_docs(app)
    document_problems(app, own_error_format)
    return app


async def _finish(task: asyncio.Task[None], *, timeout_s: float) -> None:
    if timeout_s > 0:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
