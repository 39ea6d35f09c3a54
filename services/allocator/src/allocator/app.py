"""Allocator: places each validated request on a pool server with room, never over-filling."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from allocator import handlers, models, repository
from allocator.settings import Settings
from events import ServiceRuntime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, metadata=[models.Base.metadata], routers=[handlers.router])
    return create_service_app(
        runtime,
        title="allocator",
        prepare=partial(repository.sync_pool, pool=settings.server_pool),
    )
