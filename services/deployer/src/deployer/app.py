"""Deployer: creates each configured resource in its target, verifies it, keeps its secret,
and looks after it until it is gone (drift checks, deletion after retention)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from apikeys import OAuthSettings, bearer_auth
from catalog import load_catalog
from deployer import api, handlers, models, upkeep
from deployer.drivers import Driver, Drivers
from deployer.drivers.aws import Ec2InstanceDriver, S3BucketDriver
from deployer.drivers.ldap import LdapDriver
from deployer.drivers.postgres import PostgresDriver
from deployer.drivers.webhooks import LicenceDriver, MdmDriver
from deployer.settings import Settings
from events import ServiceRuntime, create_service_app
from events.sealing import SecretCipher


def build_drivers(settings: Settings) -> Drivers:
    """One driver per (driver name, target server id) the settings configure."""
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
    for server_id, vendor in settings.licence_targets.items():
        by_target["licence", server_id] = LicenceDriver(vendor, timeout_s=timeout_s)
    for server_id, mdm in settings.mdm_targets.items():
        by_target["mdm", server_id] = MdmDriver(mdm, timeout_s=timeout_s)
    return Drivers(by_target)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    cipher = SecretCipher.from_key_file(settings.credentials_key_file)
    drivers = build_drivers(settings)
    runtime = ServiceRuntime(
        settings,
        metadata=[models.Base.metadata],
        routers=[handlers.router],
        deps=handlers.Deps(
            drivers=drivers,
            cipher=cipher,
            catalog=load_catalog(),
            verify_fault_marker=settings.inject_faults.get("deployer.verify"),
            retention_cap_s=settings.retention_cap_s,
        ),
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
    identity_engine = create_async_engine(settings.identity_database_url, pool_size=2)
    runtime.add_cleanup(drivers.close)
    runtime.add_cleanup(identity_engine.dispose)
    identity = async_sessionmaker(identity_engine)
    app = create_service_app(
        runtime,
        title="deployer",
        routers=[api.create_router(runtime, cipher, bearer_auth(identity, OAuthSettings()))],
    )
    return app
