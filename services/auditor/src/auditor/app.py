"""Auditor: keeps every event of every topic in an append-only, hash-chained history."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from apikeys import OAuthSettings, bearer_auth
from auditor import api, handlers, models
from auditor.settings import Settings
from events import ServiceRuntime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, metadata=[models.Base.metadata], routers=[handlers.router])
    identity_engine = create_async_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(identity_engine.dispose)
    authenticate = bearer_auth(async_sessionmaker(identity_engine), OAuthSettings())
    router = api.create_router(runtime, authenticate)
    return create_service_app(runtime, title="auditor", routers=[router])
