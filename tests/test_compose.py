"""docker-compose.yml wires the platform the way the code expects; checked without Docker."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import pytest
import yaml
from opentelemetry.sdk import environment_variables as otel_variables
from sqlalchemy.engine import make_url

from allocator.settings import Settings as AllocatorSettings
from deployer.settings import Settings as DeployerSettings
from events import ServiceSettings
from events.topics import SERVICES as PLATFORM_SERVICES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DATABASES_SCRIPT = ROOT / "deploy" / "docker" / "create-databases.sql"
INFRASTRUCTURE = {
    "postgres": "service_healthy",
    "kafka": "service_healthy",
    "kafka-topics": "service_completed_successfully",
}
USES_IDENTITY = {"request-api", "allocator", "deployer", "auditor"}
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
OBSERVABILITY = {"jaeger": 16686, "prometheus": 9090, "grafana": 3000}


@dataclass(frozen=True)
class App:
    name: str
    module: str
    port: int


APPS = [
    App("request-api", "request_api", 8000),
    App("validator", "validator", 8001),
    App("allocator", "allocator", 8002),
    App("configurator", "configurator", 8003),
    App("deployer", "deployer", 8004),
    App("auditor", "auditor", 8005),
]
each_app = pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])

Compose = dict[str, Any]
AnySettings = TypeVar("AnySettings", bound=ServiceSettings)


@pytest.fixture(scope="module")
def compose() -> Compose:
    loaded: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def service(compose: Compose, name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"][name]
    return found


def environment(compose: Compose, name: str) -> dict[str, str]:
    return {key: str(value) for key, value in service(compose, name)["environment"].items()}


def dependencies(compose: Compose, name: str) -> dict[str, str]:
    """Each service `name` waits for, with the condition it waits for."""
    depends_on = service(compose, name).get("depends_on", {})
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {other: spec.get("condition", "service_started") for other, spec in depends_on.items()}


def option(command: list[str], flag: str) -> str:
    """The value of `--flag=value` or `--flag value` in an argv list."""
    for index, argument in enumerate(command):
        if argument == flag:
            return command[index + 1]
        if argument.startswith(f"{flag}="):
            return argument.split("=", 1)[1]
    raise AssertionError(f"{flag} missing from {command}")


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected a duration in seconds, got {duration!r}"
    return int(match.group(1))


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def database_urls(compose: Compose) -> set[str]:
    """Every PostgreSQL URL anywhere in the file, also inside JSON values and command flags."""
    pattern = re.compile(r"postgresql(?:\+\w+)?://[^\s\"',]+")
    return {url for text in strings(compose) for url in pattern.findall(text)}


def created_databases() -> set[str]:
    return set(re.findall(r"CREATE DATABASE (\w+);", DATABASES_SCRIPT.read_text()))


def created_logins() -> set[str]:
    return set(re.findall(r"CREATE ROLE (\w+) LOGIN", DATABASES_SCRIPT.read_text()))


def mount_source(volumes: list[str], path: PurePosixPath) -> str:
    """The volume or host path a container sees at `path` (or at a folder above it)."""
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if path.is_relative_to(target):
            return source
    raise AssertionError(f"nothing mounted at {path}")


def host_path(volumes: list[str], path: PurePosixPath) -> Path:
    """The checkout's file or folder a bind mount shows a container at `path`."""
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if path.is_relative_to(target):
            assert source.startswith("./"), f"{path} comes from {source}, not the checkout"
            return (COMPOSE_FILE.parent / source / path.relative_to(target)).resolve()
    raise AssertionError(f"nothing mounted at {path}")


def repo_file(image_path: str) -> Path:
    """The checkout's copy of a file the Dockerfile copies to `image_path` in the image."""
    path = PurePosixPath(image_path)
    copies: list[tuple[str, str]] = re.findall(
        r"^COPY (\S+) (/\S+)$", DOCKERFILE.read_text(), re.MULTILINE
    )
    for source, target in copies:
        if path.is_relative_to(target):
            return ROOT / source / path.relative_to(target)
    raise AssertionError(f"the Dockerfile copies nothing to {image_path}")


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def modules_run_by(argv: list[str]) -> set[str]:
    """The Python modules a container command needs, whether run as -m, -c, a script or app."""
    if argv[0] == "uvicorn":
        return {option(argv, "--factory").split(":")[0]}
    assert argv[0] == "python", f"unexpected program in {argv}"
    if argv[1] == "-m":
        return {argv[2]}
    if argv[1] == "-c":
        return imported_modules(argv[2])
    return imported_modules(repo_file(argv[1]).read_text())


def python_commands(compose: Compose) -> Iterator[list[str]]:
    """The commands and healthchecks of every container of the app image."""
    for spec in compose["services"].values():
        if "build" not in spec:
            continue
        if "command" in spec:
            yield spec["command"]
        probe = spec.get("healthcheck", {}).get("test", [])
        if probe[:1] == ["CMD"]:
            yield probe[1:]


def settings_class(app: App) -> type[ServiceSettings]:
    found: type[ServiceSettings] = importlib.import_module(f"{app.module}.settings").Settings
    return found


def load_settings(
    compose: Compose,
    name: str,
    settings_class: type[AnySettings],
    monkeypatch: pytest.MonkeyPatch,
) -> AnySettings:
    """The Settings a container builds from its environment (and nothing else)."""
    for field in settings_class.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    for variable, value in environment(compose, name).items():
        monkeypatch.setenv(variable, value)
    return settings_class()


def test_the_stack_runs_every_platform_service(compose: Compose) -> None:
    assert {app.name for app in APPS} == set(PLATFORM_SERVICES)
    assert {app.name for app in APPS} <= set(compose["services"])


def test_image_builds_with_uv_and_runs_as_a_non_root_user() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert "uv sync --frozen --all-packages --no-dev" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


@each_app
def test_service_builds_from_the_dockerfile(compose: Compose, app: App) -> None:
    build = service(compose, app.name)["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == ROOT
    assert context / build["dockerfile"] == DOCKERFILE
    assert DOCKERFILE.is_file()


@each_app
def test_service_runs_its_app_factory_on_its_port(compose: Compose, app: App) -> None:
    spec = service(compose, app.name)
    command = spec["command"]
    assert command[:3] == ["uvicorn", "--factory", f"{app.module}.app:create_app"]
    assert option(command, "--host") == "0.0.0.0"
    assert option(command, "--port") == str(app.port)
    assert spec["ports"] == [f"127.0.0.1:{app.port}:{app.port}"]


@each_app
def test_service_uses_its_own_database_and_the_kafka_service(compose: Compose, app: App) -> None:
    env = environment(compose, app.name)
    url = make_url(env["DATABASE_URL"])
    assert (url.drivername, url.host, url.port) == ("postgresql+asyncpg", "postgres", 5432)
    assert url.database == app.module
    advertised = environment(compose, "kafka")["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in advertised.split(",")


@each_app
def test_service_runs_as_its_own_login_and_the_owner_only_creates_its_schema(
    compose: Compose, app: App
) -> None:
    env = environment(compose, app.name)
    login = make_url(env["DATABASE_URL"]).username
    assert login == app.module
    assert login in created_logins()
    assert f"GRANT CONNECT ON DATABASE {app.module} TO {login};" in DATABASES_SCRIPT.read_text()
    assert "SCHEMA_DATABASE_URL" not in env  # the owner's login stays out of the service
    if "IDENTITY_DATABASE_URL" in env:
        assert make_url(env["IDENTITY_DATABASE_URL"]).username == login
    # Its migrations job: as the owner, granting the service's login, done before it starts.
    job = f"{app.name}-migrations"
    assert service(compose, job)["command"] == [
        "python",
        "-m",
        "events.migrations",
        "upgrade",
        f"{app.module}.migrations",
    ]
    owner = make_url(environment(compose, job)["SCHEMA_DATABASE_URL"])
    assert (owner.username, owner.database) == ("postgres", app.module)
    assert environment(compose, job)["DATABASE_URL"] == env["DATABASE_URL"]
    assert dependencies(compose, app.name)[job] == "service_completed_successfully"
    assert dependencies(compose, job) == {"postgres": "service_healthy"}


@each_app
def test_service_starts_once_infrastructure_and_topics_are_ready(
    compose: Compose, app: App
) -> None:
    assert dependencies(compose, app.name).items() >= INFRASTRUCTURE.items()


@each_app
def test_service_is_healthy_when_ready_and_stops_gracefully(compose: Compose, app: App) -> None:
    spec = service(compose, app.name)
    probe = spec["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "python"]
    assert "/readyz" in repo_file(probe[2]).read_text()
    assert probe[3:] == [str(app.port)]
    assert spec["restart"] == "unless-stopped"
    # uvicorn must give up on slow requests early enough to leave the lifespan time to drain.
    request_timeout = int(option(spec["command"], "--timeout-graceful-shutdown"))
    assert seconds(spec["stop_grace_period"]) > request_timeout


@each_app
def test_environment_names_are_settings_fields(compose: Compose, app: App) -> None:
    """The Settings ignore unknown variables, so a misspelt name would pass silently. The
    OpenTelemetry SDK reads the standard `OTEL_*` ones itself."""
    fields = {field.upper() for field in settings_class(app).model_fields}
    names = set(environment(compose, app.name))
    standard = {name for name in names if name.startswith("OTEL_")}
    assert names - standard <= fields
    assert standard <= set(vars(otel_variables))


@each_app
def test_service_sends_its_spans_to_jaeger_under_its_own_name(compose: Compose, app: App) -> None:
    env = environment(compose, app.name)
    assert env["OTEL_SERVICE_NAME"] == app.name
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"  # OTLP over HTTP
    # Jaeger's receivers listen on localhost unless told otherwise.
    jaeger = service(compose, "jaeger")["command"]
    assert "--set=receivers.otlp.protocols.http.endpoint=0.0.0.0:4318" in jaeger


@each_app
def test_environment_builds_valid_settings(
    compose: Compose, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(compose, app.name, settings_class(app), monkeypatch)
    assert settings.service_name == app.name


@each_app
def test_identity_database_only_where_api_keys_are_checked(compose: Compose, app: App) -> None:
    env = environment(compose, app.name)
    if app.name in USES_IDENTITY:
        assert make_url(env["IDENTITY_DATABASE_URL"]).database == "identity"
    else:
        assert "IDENTITY_DATABASE_URL" not in env


def test_request_api_calls_the_deployer_service(compose: Compose) -> None:
    deployer_port = next(app.port for app in APPS if app.name == "deployer")
    assert environment(compose, "request-api")["DEPLOYER_URL"] == f"http://deployer:{deployer_port}"


def test_deployer_can_reach_every_server_of_the_allocator_pool(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = load_settings(compose, "allocator", AllocatorSettings, monkeypatch).server_pool
    targets = load_settings(compose, "deployer", DeployerSettings, monkeypatch).target_servers
    assert {server.id for server in pool} == set(targets)
    for target in targets.values():
        admin = make_url(target.admin_dsn)
        assert (admin.host, admin.port) == ("postgres", 5432)
        # The deployer verifies a new login at host:port itself, from inside the network.
        assert (target.host, target.port) == ("postgres", 5432)


@pytest.mark.parametrize(
    ("name", "variable", "option_name"),
    [
        ("deployer", "CREDENTIALS_KEY_FILE", "--credentials-key-file"),
        ("request-api", "WEBHOOK_KEY_FILE", "--webhook-key-file"),
        ("auditor", "CHAIN_KEY_FILE", "--audit-chain-key-file"),
        ("auditor", "SIGNING_KEY_FILE", "--audit-signing-key-file"),
    ],
)
def test_services_read_the_sealing_key_the_secrets_job_writes(
    compose: Compose, name: str, variable: str, option_name: str
) -> None:
    key_file = PurePosixPath(environment(compose, name)[variable])
    job = service(compose, "secrets")
    assert option(job["command"], option_name) == str(key_file)
    volume = mount_source(job["volumes"], key_file)
    assert volume in compose["volumes"]
    assert mount_source(service(compose, name)["volumes"], key_file) == volume
    assert service(compose, name)["depends_on"]["secrets"] == {
        "condition": "service_completed_successfully"
    }
    assert dependencies(compose, "deployer")["secrets"] == "service_completed_successfully"
    # A new volume copies the image's folder: created there, it is writable by the app user.
    assert str(key_file.parent) in DOCKERFILE.read_text()


def test_admin_key_job_writes_to_its_own_volume(compose: Compose) -> None:
    job = service(compose, "secrets")
    key_file = PurePosixPath(option(job["command"], "--admin-key-file"))
    assert mount_source(job["volumes"], key_file) in compose["volumes"]
    assert make_url(option(job["command"], "--identity-database-url")).database == "identity"
    # The admin key goes into the keys' table, which the identity migrations make.
    assert dependencies(compose, "secrets") == {
        "postgres": "service_healthy",
        "identity-migrations": "service_completed_successfully",
    }
    migrations = service(compose, "identity-migrations")
    assert migrations["command"][-1] == "request_api.identity_migrations"
    owner = make_url(environment(compose, "identity-migrations")["SCHEMA_DATABASE_URL"])
    assert (owner.username, owner.database) == ("postgres", "identity")


def test_every_database_the_stack_names_is_created_on_first_start(compose: Compose) -> None:
    named = {make_url(url).database for url in database_urls(compose)}
    assert {app.module for app in APPS} | {"identity"} <= named
    assert named - {"postgres"} <= created_databases()
    postgres = service(compose, "postgres")
    script = PurePosixPath("/docker-entrypoint-initdb.d") / "10-create-databases.sql"
    assert (COMPOSE_FILE.parent / mount_source(postgres["volumes"], script)).resolve() == (
        DATABASES_SCRIPT
    )


def test_postgres_requires_scram_over_tcp_and_reports_health(compose: Compose) -> None:
    postgres = service(compose, "postgres")
    assert postgres["image"] == "postgres:15"
    assert environment(compose, "postgres")["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_kafka_is_one_kraft_node_that_never_creates_topics_itself(compose: Compose) -> None:
    kafka = environment(compose, "kafka")
    assert service(compose, "kafka")["image"] == "apache/kafka:4.1.0"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@kafka:9093"
    replication = {
        value for name, value in kafka.items() if name.endswith(("REPLICATION_FACTOR", "MIN_ISR"))
    }
    assert replication == {"1"}
    assert kafka["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "healthcheck" in service(compose, "kafka")


def test_topics_job_creates_every_topic_on_the_kafka_service(compose: Compose) -> None:
    job = service(compose, "kafka-topics")
    assert job["command"][:2] == ["python", "-c"]
    calls = [
        node
        for node in ast.walk(ast.parse(job["command"][2]))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ensure_topics"
    ]
    assert [ast.literal_eval(call.args[0]) for call in calls] == ["kafka:9092"]
    assert dependencies(compose, "kafka-topics") == {"kafka": "service_healthy"}


def test_every_module_the_stack_runs_exists(compose: Compose) -> None:
    needed = {module for argv in python_commands(compose) for module in modules_run_by(argv)}
    assert {f"{app.module}.app" for app in APPS} | {"events.topics", "apikeys"} <= needed
    missing = {module for module in needed if importlib.util.find_spec(module) is None}
    assert not missing


def test_every_awaited_condition_can_be_met(compose: Compose) -> None:
    """Health needs a healthcheck; completion needs a job that is not restarted."""
    for name in compose["services"]:
        for other, condition in dependencies(compose, name).items():
            target = service(compose, other)
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {other}'s health"
            elif condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{name} waits for {other} to end"


def test_published_ports_listen_on_loopback_only(compose: Compose) -> None:
    for name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_observability_images_are_pinned_and_published_on_their_usual_ports(
    compose: Compose,
) -> None:
    for name, port in OBSERVABILITY.items():
        spec = service(compose, name)
        image, _, tag = spec["image"].partition(":")
        assert tag and tag != "latest", f"{name}: pin {image}"
        assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert spec["restart"] == "unless-stopped"
    assert service(compose, "jaeger")["image"].startswith("jaegertracing/jaeger:2.")


def test_prometheus_scrapes_every_service_by_its_compose_name(compose: Compose) -> None:
    spec = service(compose, "prometheus")
    config_file = host_path(
        spec["volumes"], PurePosixPath(option(spec["command"], "--config.file"))
    )
    assert config_file == PROMETHEUS_DIR / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "provisioning"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    scraped = {
        target: group["labels"]["service"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert scraped == {f"{app.name}:{app.port}": app.name for app in APPS}
    # Rule files are globs relative to the configuration file, in the mounted folder.
    rule_files = [
        path for pattern in config["rule_files"] for path in config_file.parent.glob(pattern)
    ]
    assert sorted(rule_files) == sorted(PROMETHEUS_DIR.glob("rules/*.yml"))
    assert rule_files
    assert "healthcheck" in spec


def test_grafana_provisions_the_dashboards_and_both_datasources(compose: Compose) -> None:
    spec = service(compose, "grafana")
    provisioning = host_path(spec["volumes"], PurePosixPath("/etc/grafana/provisioning"))
    assert provisioning == GRAFANA_DIR / "provisioning"
    [providers_file] = (provisioning / "dashboards").glob("*.yaml")
    [provider] = yaml.safe_load(providers_file.read_text())["providers"]
    assert provider["type"] == "file"
    dashboards = host_path(spec["volumes"], PurePosixPath(provider["options"]["path"]))
    assert dashboards == GRAFANA_DIR / "dashboards"
    assert len(list(dashboards.glob("*.json"))) == 4
    home = PurePosixPath(
        environment(compose, "grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    assert host_path(spec["volumes"], home).is_file()

    datasources = {
        source["type"]: source
        for file in (provisioning / "datasources").glob("*.yaml")
        for source in yaml.safe_load(file.read_text())["datasources"]
    }
    assert set(datasources) == {"prometheus", "jaeger"}
    assert datasources["prometheus"]["url"] == f"http://prometheus:{OBSERVABILITY['prometheus']}"
    assert datasources["jaeger"]["url"] == f"http://jaeger:{OBSERVABILITY['jaeger']}"
    assert dependencies(compose, "grafana") == {
        "prometheus": "service_healthy",
        "jaeger": "service_started",
    }
    env = environment(compose, "grafana")
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # The admin password comes from the environment of `docker compose`, not the file.
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
