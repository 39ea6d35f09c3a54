"""Allocator: places each validated request on a pool server with room, within its tenant's
quota, never over-filling either."""

from __future__ import annotations

import json
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from allocator import api, backorders, handlers, migrations, repository
from allocator.settings import Settings
from apikeys import OAuthSettings, bearer_auth, create_identity_engine
from catalog import load_catalog
from events import ServiceRuntime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalog = load_catalog()
    organisation = json.loads(settings.seed_file.read_text()) if settings.seed_file else {}
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(catalog=catalog),
    )

    runtime.add_periodic(
        "backorders", settings.backorder_interval_s, partial(backorders.fill, runtime, catalog)
    )

    async def prepare(session: AsyncSession) -> None:
        await repository.sync_pool(session, settings.server_pool)
        await repository.sync_quotas(session, organisation)
        await repository.sync_units(session, organisation)

    identity_engine = create_identity_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(identity_engine.dispose)
    authenticate = bearer_auth(async_sessionmaker(identity_engine), OAuthSettings())
    return create_service_app(
        runtime,
        title="allocator",
        routers=[api.create_router(runtime, catalog, authenticate)],
        prepare=prepare,
    )
