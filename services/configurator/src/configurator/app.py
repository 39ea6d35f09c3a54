"""Configurator: turns an allocated request into the concrete configuration to deploy."""

from __future__ import annotations

from fastapi import FastAPI

from catalog import load_catalog
from configurator import handlers, migrations
from configurator.settings import Settings
from events import ServiceRuntime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(catalog=load_catalog()),
    )
    return create_service_app(runtime, title="configurator")
