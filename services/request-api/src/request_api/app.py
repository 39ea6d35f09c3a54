"""Request API: accepts provisioning requests over REST and follows them through the pipeline."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from apikeys import bearer_auth
from catalog import load_catalog
from events import ServiceRuntime, create_service_app
from request_api import (
    api_bundles,
    api_people,
    api_requests,
    api_resources,
    handlers,
    lease_clock,
    models,
)
from request_api.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalog = load_catalog()
    runtime = ServiceRuntime(
        settings,
        metadata=[models.Base.metadata],
        routers=[handlers.router],
        deps=handlers.Deps(catalog=catalog),
    )
    identity_engine = create_async_engine(settings.identity_database_url, pool_size=5)
    deployer = httpx.AsyncClient(base_url=settings.deployer_url, timeout=10.0)
    allocator = httpx.AsyncClient(base_url=settings.allocator_url, timeout=10.0)
    runtime.add_cleanup(deployer.aclose)
    runtime.add_cleanup(allocator.aclose)
    runtime.add_cleanup(identity_engine.dispose)
    authenticate = bearer_auth(async_sessionmaker(identity_engine))
    routers = [
        api_requests.create_router(runtime, catalog, allocator, authenticate),
        api_resources.create_router(runtime, catalog, deployer, authenticate),
        api_bundles.create_router(runtime, catalog, authenticate),
        api_people.create_router(runtime, authenticate),
    ]
    warn_before = timedelta(seconds=settings.lease_warning_s)
    runtime.add_periodic(
        "lease-clock",
        settings.lease_sweep_interval_s,
        partial(lease_clock.tick, runtime, warn_before=warn_before),
    )
    return create_service_app(runtime, title="request-api", routers=routers)
