"""Validator: checks each submitted request against its catalog item's schema and policy."""

from __future__ import annotations

from fastapi import FastAPI

from catalog import load_catalog
from events import ServiceRuntime, create_service_app
from validator import handlers, migrations
from validator.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalog = load_catalog(entitlements_file=settings.entitlements_file)
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(catalog=catalog),
    )
    return create_service_app(runtime, title="validator")
