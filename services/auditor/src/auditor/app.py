"""Auditor: keeps every event of every topic in an append-only history, chained under a key
kept outside the database and sealed by signed Merkle checkpoints published outside it."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from apikeys import OAuthSettings, bearer_auth, create_identity_engine
from auditor import api, api_replay, checkpoints, handlers, migrations
from auditor.compliance import api as compliance_api
from auditor.compliance import reports
from auditor.sealing import Sealer, SealPolicy
from auditor.settings import Settings
from catalog import load_catalog
from events import ServiceRuntime, create_service_app
from events.sealing import read_key


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    chain_key = read_key(settings.chain_key_file)
    sealer = Sealer(
        private_key=checkpoints.load_private_key(settings.signing_key_file),
        checkpoint_file=settings.checkpoint_file,
        policy=SealPolicy(
            every_records=settings.checkpoint_every_records,
            every=timedelta(seconds=settings.checkpoint_every_s),
        ),
    )
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(chain_key=chain_key),
    )
    # Rounds more often than the period, so a checkpoint is at most a round late.
    runtime.add_periodic("checkpoints", min(1.0, settings.checkpoint_every_s), sealer.round)
    identity_engine = create_identity_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(identity_engine.dispose)
    authenticate = bearer_auth(async_sessionmaker(identity_engine), OAuthSettings())
    # Reports price each catalog item's resources at the catalog's monthly price.
    prices = {name: reports.Price(item.monthly_cost) for name, item in load_catalog().items.items()}
    routers = [
        api.create_router(runtime, authenticate, chain_key=chain_key, sealer=sealer),
        api_replay.create_router(runtime, authenticate, chain_key=chain_key),
        compliance_api.create_router(
            runtime, authenticate, chain_key=chain_key, sealer=sealer, prices=prices
        ),
    ]
    return create_service_app(runtime, title="auditor", routers=routers)
