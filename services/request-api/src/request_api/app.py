"""Request API: accepts provisioning requests over REST and follows them through the pipeline."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from apikeys import OAuthSettings, bearer_auth, create_identity_engine
from catalog import load_catalog
from events import ServiceRuntime, create_service_app, outbound, tracing
from events.metrics import RuntimeMetrics
from events.sealing import SecretCipher
from request_api import (
    api_bundles,
    api_keys,
    api_people,
    api_requests,
    api_resources,
    handlers,
    lease_clock,
    limits,
    migrations,
    progress,
)
from request_api.approvals import api as approvals_api
from request_api.approvals import clock as approvals_clock
from request_api.idempotency import repository as idempotency_keys
from request_api.idempotency.middleware import IdempotencyKeys
from request_api.scim import api as scim_api
from request_api.search import api as search_api
from request_api.settings import Settings
from request_api.webhooks import api as webhooks_api
from request_api.webhooks import delivery as webhook_delivery
from request_api.webhooks import stream as request_events
from request_api.webhooks.listener import ActivitySignal


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalog = load_catalog(entitlements_file=settings.entitlements_file)
    metrics = RuntimeMetrics.create()
    progress_metrics = progress.ProgressMetrics.create(metrics.registry)
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(
            catalog=catalog,
            progress=progress_metrics,
            approval_time_cap_s=settings.approval_time_cap_s,
        ),
        metrics=metrics,
    )
    identity_engine = create_identity_engine(settings.identity_database_url, pool_size=5)
    deployer = httpx.AsyncClient(base_url=settings.deployer_url, timeout=10.0)
    allocator = httpx.AsyncClient(base_url=settings.allocator_url, timeout=10.0)
    for traced in (deployer, allocator):
        tracing.instrument_http_client(traced, runtime.tracer_provider)
    tracing.instrument_engine(identity_engine, runtime.tracer_provider)  # API key lookups
    runtime.add_cleanup(deployer.aclose)
    runtime.add_cleanup(allocator.aclose)
    runtime.add_cleanup(identity_engine.dispose)
    # Webhook subscribers are other people's servers: checked addresses only, no redirects.
    allow_list = settings.allow_list()
    webhooks = outbound.guarded_client(allow_list, timeout_s=settings.webhook_timeout_s)
    runtime.add_cleanup(webhooks.aclose)
    webhook_cipher = SecretCipher.from_key_file(settings.webhook_key_file)
    activity = ActivitySignal(runtime.engine)
    runtime.add_cleanup(activity.close)
    identity = async_sessionmaker(identity_engine)
    authenticate = bearer_auth(identity, OAuthSettings())
    # Every /v1 route authenticates, then counts against the caller's limits.
    authenticate_within_limits = limits.within_limits(
        authenticate, limits.Limits(runtime, settings)
    )
    routers = [
        api_requests.create_router(
            runtime, catalog, allocator, authenticate_within_limits, progress_metrics
        ),
        api_resources.create_router(runtime, catalog, deployer, authenticate_within_limits),
        api_bundles.create_router(runtime, catalog, authenticate_within_limits),
        api_people.create_router(runtime, authenticate_within_limits),
        search_api.create_router(runtime, authenticate_within_limits),
        api_keys.create_router(identity, authenticate_within_limits),
        approvals_api.create_router(runtime, catalog, authenticate_within_limits),
        webhooks_api.create_router(
            runtime,
            authenticate_within_limits,
            cipher=webhook_cipher,
            allow_list=allow_list,
        ),
        request_events.create_router(runtime, authenticate_within_limits, activity),
        scim_api.create_router(runtime, catalog, authenticate_within_limits),
    ]
    warn_before = timedelta(seconds=settings.lease_warning_s)
    runtime.add_periodic(
        "lease-clock",
        settings.lease_sweep_interval_s,
        partial(lease_clock.tick, runtime, warn_before=warn_before),
    )
    runtime.add_periodic(
        "webhook-delivery",
        settings.webhook_delivery_interval_s,
        partial(
            webhook_delivery.tick,
            client=webhooks,
            cipher=webhook_cipher,
            policy=webhook_delivery.policy_of(settings),
        ),
    )
    runtime.add_periodic("idempotency-purge", 600.0, idempotency_keys.purge_expired)
    runtime.add_periodic(
        "journal-purge",
        3600.0,
        partial(webhook_delivery.purge, keep=timedelta(days=settings.journal_retention_days)),
    )
    runtime.add_periodic(
        "approval-clock",
        settings.approval_sweep_interval_s,
        partial(approvals_clock.tick, runtime),
    )
    runtime.add_periodic(
        "stuck-requests",
        settings.stuck_check_interval_s,
        partial(
            progress.count_stuck,
            progress_metrics,
            longer_than=timedelta(seconds=settings.stuck_after_s),
        ),
    )
    app = create_service_app(
        runtime,
        title="request-api",
        routers=routers,
        own_error_format=[scim_api.PREFIX],
    )
    app.add_middleware(
        IdempotencyKeys,
        runtime=runtime,
        authenticate=authenticate,
        max_body_bytes=settings.max_body_bytes,
    )
    return app
