"""Deployer: creates each configured resource in its target, verifies it, keeps its secret,
and looks after it until it is gone (drift checks, deletion after retention)."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import async_sessionmaker

from apikeys import OAuthSettings, bearer_auth, create_identity_engine
from catalog import load_catalog
from deployer import api, handlers, migrations, upkeep
from deployer.drivers import Driver, Drivers
from deployer.drivers.aws.ec2 import Ec2InstanceDriver
from deployer.drivers.aws.s3 import S3BucketDriver
from deployer.drivers.ldap import LdapDriver
from deployer.drivers.postgres import PostgresDriver
from deployer.drivers.webhooks import LicenceDriver, MdmDriver
from deployer.settings import Settings
from events import ServiceRuntime, create_service_app, tracing
from events.sealing import SecretCipher


def build_drivers(settings: Settings, tracer_provider: TracerProvider | None = None) -> Drivers:
    """One driver per (driver name, target server id) the settings configure; with a
    `tracer_provider`, every driver call and webhook HTTP call is a span."""
    timeout_s = settings.target_timeout_s
    postgres = PostgresDriver(settings.target_servers, timeout_s=timeout_s)
    by_target: dict[tuple[str, str], Driver] = {
        ("postgres", server_id): postgres for server_id in settings.target_servers
    }
    for server_id, ldap in settings.ldap_targets.items():
        by_target["ldap", server_id] = LdapDriver(ldap, timeout_s=timeout_s)
    for server_id, aws in settings.aws_targets.items():
        by_target["aws_ec2", server_id] = Ec2InstanceDriver(aws, timeout_s=timeout_s)
        by_target["aws_s3", server_id] = S3BucketDriver(aws, timeout_s=timeout_s)
    allow_list = settings.allow_list()
    for server_id, vendor in settings.licence_targets.items():
        by_target["licence", server_id] = LicenceDriver(
            vendor, timeout_s=timeout_s, allow_list=allow_list, tracer_provider=tracer_provider
        )
    for server_id, mdm in settings.mdm_targets.items():
        by_target["mdm", server_id] = MdmDriver(
            mdm, timeout_s=timeout_s, allow_list=allow_list, tracer_provider=tracer_provider
        )
    tracer = tracing.tracer_of(tracer_provider) if tracer_provider is not None else None
    return Drivers(by_target, tracer)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    cipher = SecretCipher.from_key_file(settings.credentials_key_file)
    # Made before the runtime, so that the drivers, built before it too, trace with it.
    tracer_provider = tracing.create_tracer_provider(settings.service_name, settings.traces_dir)
    drivers = build_drivers(settings, tracer_provider)
    runtime = ServiceRuntime(
        settings,
        schema=migrations.SCHEMA,
        routers=[handlers.router],
        deps=handlers.Deps(
            drivers=drivers,
            cipher=cipher,
            catalog=load_catalog(),
            verify_fault_marker=settings.inject_faults.get("deployer.verify"),
            retention_cap_s=settings.retention_cap_s,
        ),
        tracer_provider=tracer_provider,
    )
    runtime.add_periodic(
        "drift check",
        settings.upkeep_interval_s,
        upkeep.drift_check(runtime, drivers, interval_s=settings.drift_check_interval_s),
    )
    runtime.add_periodic(
        "deletion after retention",
        settings.upkeep_interval_s,
        upkeep.purge_retained(runtime, drivers),
    )
    identity_engine = create_identity_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(drivers.close)
    runtime.add_cleanup(identity_engine.dispose)
    identity = async_sessionmaker(identity_engine)
    app = create_service_app(
        runtime,
        title="deployer",
        routers=[api.create_router(runtime, cipher, bearer_auth(identity, OAuthSettings()))],
    )
    return app
