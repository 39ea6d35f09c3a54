"""Deployer: creates each configured resource in its target, verifies it, keeps its secret."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from apikeys import bearer_auth
from deployer import api, handlers, models
from deployer.credentials import CredentialCipher
from deployer.settings import Settings
from deployer.targets import PostgresTargets
from events import ServiceRuntime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    cipher = CredentialCipher.from_key_file(settings.credentials_key_file)
    targets = PostgresTargets(
        settings.target_servers,
        timeout_s=settings.target_timeout_s,
        verify_fault_marker=settings.inject_faults.get("deployer.verify"),
    )
    runtime = ServiceRuntime(
        settings,
        metadata=[models.Base.metadata],
        routers=[handlers.router],
        deps=handlers.Deps(targets=targets, cipher=cipher),
    )
    identity_engine = create_async_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(targets.close)
    runtime.add_cleanup(identity_engine.dispose)
    identity = async_sessionmaker(identity_engine)
    app = create_service_app(
        runtime,
        title="deployer",
        routers=[api.create_router(runtime, cipher, bearer_auth(identity))],
    )
    return app
