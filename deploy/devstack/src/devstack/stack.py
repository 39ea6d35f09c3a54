"""The whole local stack behind one object, shared by the CLI and the pytest fixtures."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from devstack import kafka, keys, migrations, postgres, services, targets
from devstack.config import SERVICES, StackConfig
from devstack.proc import StackError, run_async, wait_ports_released
from events.topics import ensure_topics

# Listening sockets close as their process ends, so this wait is short when all went well.
PORTS_RELEASE_TIMEOUT = 10.0


def ports(config: StackConfig) -> list[int]:
    """Every port the stack listens on, those of every possible replica included."""
    replicas = range(services.MAX_REPLICAS)
    return [
        config.pg_port,
        config.kafka_port,
        config.kafka_controller_port,
        config.ldap_port,
        config.cloud_port,
        config.receiver_port,
        *(services.port(config, name, replica) for name in SERVICES for replica in replicas),
    ]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None


def _quiet(message: str) -> None:
    pass


class Stack:
    def __init__(self, config: StackConfig, *, say: Callable[[str], None] = _quiet) -> None:
        self.config = config
        self._say = say

    def start_infrastructure(self, *, fresh: bool = False) -> None:
        """PostgreSQL, Kafka and the topics: enough for the libraries' integration tests."""
        if fresh:
            self.down()
            self.wipe()
        with self._timed("postgres"):
            postgres.start(self.config)
        with self._timed("kafka"):
            kafka.start(self.config)
        with self._timed("topics"):
            created = run_async(
                ensure_topics(self.config.bootstrap_servers, partitions=self.config.partitions)
            )
        if created:
            self._say(f"created topics: {', '.join(created)}")

    def up(self, *, fresh: bool = False, scale: Mapping[str, int] | None = None) -> None:
        """Everything, idempotently: what runs is left alone, what is missing is started;
        `scale[service]` replicas of a service (default 1), extra ones stopped."""
        self.start_infrastructure(fresh=fresh)
        with self._timed("migrations"):
            migrations.apply(self.config)
        keys.ensure_sealing_keys(self.config)
        keys.ensure_idp_key(self.config)
        keys.ensure_audit_signing_key(self.config)
        keys.ensure_admin_key(self.config)
        keys.ensure_people_keys(self.config)
        with self._timed("targets"):
            targets.start(self.config)
        with self._timed("services"):
            services.start(self.config, scale=scale)

    def down(self) -> None:
        # Services first so none of them logs a storm of connection errors on the way out.
        services.stop(self.config)
        targets.stop(self.config)
        kafka.stop(self.config)
        postgres.stop(self.config)
        # What the next `up` binds again: a port still held would fail it.
        wait_ports_released(ports(self.config), timeout=PORTS_RELEASE_TIMEOUT)

    def wipe(self) -> None:
        """Delete the stack's state (data, logs, keys); the Kafka jars are kept."""
        running = [status.name for status in self.status() if status.running]
        if running:
            raise StackError(f"refusing to wipe {self.config.root}: still running: {running}")
        for path in self.config.state_paths():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def status(self) -> list[ComponentStatus]:
        statuses = [
            ComponentStatus("postgres", postgres.running_pid(self.config)),
            ComponentStatus("kafka", kafka.running_pid(self.config)),
            *(ComponentStatus(n, pid) for n, pid in targets.running_pids(self.config).items()),
        ]
        instances = services.running_instances(self.config)
        every = {*((name, 0) for name in SERVICES), *instances}
        for name, replica in sorted(every, key=lambda item: (SERVICES.index(item[0]), item[1])):
            statuses.append(
                ComponentStatus(
                    services.instance_name(name, replica),
                    services.running_pid(self.config, name, replica),
                )
            )
        return statuses

    def service_url(self, name: str, replica: int = 0) -> str:
        return services.url(self.config, name, replica)

    def start_service(self, name: str, replica: int = 0) -> str:
        return services.start_service(self.config, name, replica)

    def kill_service(
        self, name: str, sig: signal.Signals = signal.SIGKILL, replica: int = 0
    ) -> int | None:
        return services.kill_service(self.config, name, sig, replica)

    def admin_key(self) -> str:
        return self.config.admin_key_file.read_text().strip()

    def database_url(self, database: str) -> str:
        """SQLAlchemy (asyncpg driver) URL of one of postgres.DATABASES."""
        return postgres.sqlalchemy_url(self.config, database)

    def database_dsn(self, database: str) -> str:
        """Plain DSN for asyncpg.connect()."""
        return postgres.dsn(self.config, database)

    def pg_server_pid(self) -> int | None:
        return postgres.pg_server_pid(self.config)

    @property
    def bootstrap_servers(self) -> str:
        return self.config.bootstrap_servers

    @contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self._say(f"{what} ready in {time.monotonic() - started:.1f} s")
