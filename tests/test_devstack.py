"""The local stack: pure configuration first, then a smoke test of the real PostgreSQL and Kafka."""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from catalog import load_catalog
from devstack import kafka, keys, migrations, postgres, proc, services
from devstack.config import SERVICES, StackConfig
from devstack.stack import Stack
from events.topics import ALL_TOPICS

REPO = Path("/srv/repo")
DEFAULT = StackConfig.default(REPO)
TESTS = StackConfig.for_tests(REPO, slot=0)


def ports(config: StackConfig) -> list[int]:
    replicas = [services.port(config, name, replica) for name in SERVICES for replica in (1, 2)]
    return [
        config.pg_port,
        config.kafka_port,
        config.kafka_controller_port,
        *config.service_ports.values(),
        *replicas,
    ]


def test_ports_are_unique_within_and_across_profiles() -> None:
    slots = [StackConfig.for_tests(REPO, slot=n) for n in range(1, 7)]
    every = ports(DEFAULT) + ports(TESTS) + [port for slot in slots for port in ports(slot)]
    assert len(every) == len(set(every))
    assert len({slot.root for slot in slots} | {TESTS.root}) == 7


def test_profiles_share_the_jars_but_not_the_state() -> None:
    assert DEFAULT.kafka_libs == TESTS.kafka_libs == REPO / ".local" / "kafka" / "libs"
    assert DEFAULT.root == REPO / ".local"
    assert TESTS.root == REPO / ".local" / "test"
    assert not {DEFAULT.pg_data, DEFAULT.kafka_data} & {TESTS.pg_data, TESTS.kafka_data}


def test_wiping_state_spares_the_jars_and_the_other_profile() -> None:
    for path in DEFAULT.state_paths():
        assert path != DEFAULT.root
        assert not DEFAULT.kafka_libs.is_relative_to(path)
        assert not TESTS.root.is_relative_to(path)


def test_server_properties_describe_a_single_local_node() -> None:
    lines = kafka.render_server_properties(TESTS).splitlines()
    settings = dict(line.split("=", 1) for line in lines)
    assert settings["process.roles"] == "broker,controller"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert settings["log.dirs"] == str(REPO / ".local" / "test" / "kafka" / "data")
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["group.min.session.timeout.ms"] == "3000"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["transaction.state.log.replication.factor"] == "1"
    assert settings["transaction.state.log.min.isr"] == "1"


def test_cluster_id_is_a_base64url_uuid() -> None:
    assert len(kafka.CLUSTER_ID) == 22
    assert not kafka.CLUSTER_ID.startswith("-")
    assert len(base64.urlsafe_b64decode(kafka.CLUSTER_ID + "==")) == 16


def test_database_urls_use_the_unix_socket_and_its_port() -> None:
    url = make_url(postgres.sqlalchemy_url(TESTS, "deployer"))
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.database, url.host) == ("postgres", "deployer", None)
    assert url.query == {"host": str(TESTS.pg_socket_dir), "port": "55433"}
    assert postgres.dsn(TESTS, "identity") == (
        f"postgresql://postgres@/identity?host={TESTS.pg_socket_dir}&port=55433"
    )


def test_every_service_gets_its_own_database_and_the_shared_settings() -> None:
    for name in SERVICES:
        env = services.environment(TESTS, name)
        assert env["SERVICE_NAME"] == name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
        assert env["TRACES_DIR"] == str(TESTS.traces_dir)
        assert make_url(env["DATABASE_URL"]).database == name.replace("-", "_")
        assert ("IDENTITY_DATABASE_URL" in env) == (
            name in {"request-api", "allocator", "deployer", "auditor"}
        )


def test_every_service_runs_as_its_own_login_and_its_migrations_as_the_owner() -> None:
    for name in SERVICES:
        env = services.environment(TESTS, name)
        login = name.replace("-", "_")
        assert make_url(env["DATABASE_URL"]).username == login
        assert "SCHEMA_DATABASE_URL" not in env  # the owner's login stays out of the service
        if "IDENTITY_DATABASE_URL" in env:
            assert make_url(env["IDENTITY_DATABASE_URL"]).username == login
        step = migrations.environment(TESTS, login)
        assert make_url(step["SCHEMA_DATABASE_URL"]).username == postgres.PG_USER
        assert make_url(step["SCHEMA_DATABASE_URL"]).database == login
        assert step["DATABASE_URL"] == env["DATABASE_URL"]


def test_every_database_has_a_history_and_identity_grants_are_the_clusters() -> None:
    assert set(migrations.HISTORIES) == set(postgres.DATABASES)
    assert "DATABASE_URL" not in migrations.environment(TESTS, "identity")


def test_only_the_logins_that_use_a_database_may_connect_to_it() -> None:
    grants = postgres.connect_grants()
    for database in postgres.DATABASES:
        assert grants[database] == (
            ["request_api", "allocator", "deployer", "auditor"]
            if database == "identity"
            else [database]
        )
    assert all("FROM PUBLIC" in s for s in postgres.cluster_statements() if "REVOKE" in s)


def test_scale_names_replicas_per_service() -> None:
    assert services.parse_scale("allocator=3 deployer=2") == {"allocator": 3, "deployer": 2}
    assert services.parse_scale("allocator=3,deployer=2") == {"allocator": 3, "deployer": 2}
    assert services.parse_scale("") == {}
    for wrong in ("allocator", "allocator=0", "allocator=x", "nobody=2", "allocator=99"):
        with pytest.raises(proc.StackError, match="SCALE"):
            services.parse_scale(wrong)
    config = StackConfig.default(Path("/repo"))
    assert services.port(config, "allocator", 2) != services.port(config, "allocator", 1)


def test_service_specific_settings() -> None:
    assert services.environment(TESTS, "request-api")["DEPLOYER_URL"] == "http://127.0.0.1:18004"
    pool = json.loads(services.environment(TESTS, "allocator")["SERVER_POOL"])
    assert pool[0]["id"] == "pg-local"
    deployer = services.environment(TESTS, "deployer")
    target = json.loads(deployer["TARGET_SERVERS"])["pg-local"]
    assert target == {
        "admin_dsn": postgres.dsn(TESTS, "postgres"),
        "host": "127.0.0.1",
        "port": 55433,
    }
    assert deployer["CREDENTIALS_KEY_FILE"] == str(TESTS.secrets_dir / "credentials.key")


@pytest.mark.parametrize("profile", [StackConfig.default, StackConfig.for_tests])
def test_the_policy_services_share_an_entitlements_file_the_catalog_accepts(
    profile: Callable[[Path], StackConfig],
) -> None:
    config = profile(Path(__file__).resolve().parents[1])
    entitlements = config.repo / config.entitlements_file
    for name in SERVICES:
        given = services.environment(config, name).get("ENTITLEMENTS_FILE")
        assert given == (str(entitlements) if name in ("request-api", "validator") else None)
    load_catalog(entitlements_file=entitlements)  # raises on a file it refuses


def test_sealing_keys_are_private_base64_of_32_bytes_and_kept(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    keys.ensure_sealing_keys(config)
    for key_file in (config.credentials_key_file, config.webhook_key_file):
        assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert keys.ensure_sealing_key(config, key_file).read_text() == key_file.read_text()
    assert stat.S_IMODE(config.secrets_dir.stat().st_mode) == 0o700
    assert config.credentials_key_file.read_text() != config.webhook_key_file.read_text()


def test_processes_are_tracked_and_stopped_by_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    pid = proc.spawn(argv, log=tmp_path / "sleeper.log", pid_file=pid_file, cwd=tmp_path)
    assert proc.live_pid(pid_file, "time.sleep(60)") == pid
    assert proc.live_pid(pid_file, "some other program") is None
    proc.stop_pid_files([(pid_file, "time.sleep(60)")], timeout=5)
    assert not proc.is_alive(pid)
    assert not pid_file.exists()


@pytest.mark.integration
async def test_postgres_accepts_both_url_forms(infra: Stack) -> None:
    connection = await asyncpg.connect(infra.database_dsn("identity"))
    try:
        assert await connection.fetchval("SELECT current_database()") == "identity"
    finally:
        await connection.close()
    engine = create_async_engine(infra.database_url("auditor"))
    try:
        async with engine.connect() as sql:
            assert await sql.scalar(text("SELECT current_database()")) == "auditor"
    finally:
        await engine.dispose()


@pytest.mark.integration
async def test_password_logins_over_tcp_are_checked(infra: Stack) -> None:
    admin = await asyncpg.connect(infra.database_dsn("postgres"))
    try:
        await admin.execute("DROP ROLE IF EXISTS devstack_probe")
        await admin.execute("CREATE ROLE devstack_probe LOGIN PASSWORD 'right'")
        tcp = {"host": "127.0.0.1", "port": infra.config.pg_port, "database": "postgres"}
        probe = await asyncpg.connect(user="devstack_probe", password="right", **tcp)
        await probe.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(user="devstack_probe", password="wrong", **tcp)
    finally:
        await admin.execute("DROP ROLE IF EXISTS devstack_probe")
        await admin.close()


@pytest.mark.integration
async def test_kafka_serves_every_platform_topic(infra: Stack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        assert set(ALL_TOPICS) <= set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.integration
def test_starting_again_leaves_running_components_alone(infra: Stack) -> None:
    before = {status.name: status.pid for status in infra.status()}
    infra.start_infrastructure()
    assert {status.name: status.pid for status in infra.status()} == before
