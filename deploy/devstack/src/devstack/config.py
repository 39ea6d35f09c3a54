"""Where the local stack keeps its state and which ports it uses, for `make up` and for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICE_MODULES: dict[str, str] = {
    "request-api": "request_api",
    "validator": "validator",
    "allocator": "allocator",
    "configurator": "configurator",
    "deployer": "deployer",
    "auditor": "auditor",
}
SERVICES = tuple(SERVICE_MODULES)


def repo_root() -> Path:
    # Workspace members are installed editable, so this file sits in the checkout.
    return Path(__file__).resolve().parents[4]


def _ports_from(first: int) -> dict[str, int]:
    return {name: first + offset for offset, name in enumerate(SERVICE_MODULES)}


@dataclass(frozen=True)
class StackConfig:
    repo: Path
    root: Path
    pg_port: int
    kafka_port: int
    kafka_controller_port: int
    service_ports: dict[str, int]
    # The target systems the deployer's drivers talk to.
    ldap_port: int
    cloud_port: int
    receiver_port: int
    partitions: int = 6
    # Durability matters for `make up` (state survives a power cut); tests start fresh anyway.
    pg_fsync: bool = True
    # The organisation the allocator applies at start: tenants and their quotas.
    seed_file: str = "deploy/seed/organisation.json"
    # The organisation's tenants' entitlements, over the catalog's defaults (request-api and
    # validator).
    entitlements_file: str = "deploy/seed/entitlements.json"
    # Chaos testing: the test stack lets a request ask for a failure at any step.
    inject_faults: bool = False
    lease_sweep_interval_s: float = 30.0
    # The request-api's approval clock, and a cap on every approval wait (escalation, denial).
    approval_sweep_interval_s: float = 10.0
    approval_time_cap_s: float | None = None
    # The request-api's webhook deliveries: how often, and the retries' backoff and count.
    # Subscribers of a local stack live on this machine (private addresses are refused
    # in production).
    webhook_delivery_interval_s: float = 1.0
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_cap_s: float = 3600.0
    webhook_max_attempts: int = 12
    webhook_timeout_s: float = 5.0
    # The deployer's upkeep: drift checks, and deletion after the catalog's retention.
    drift_check_interval_s: float = 300.0
    upkeep_interval_s: float = 10.0
    retention_cap_s: float | None = None
    # How long the deployer waits for a target, and retries one that fails (about 30 s in all
    # by default); the tests fail targets on purpose and wait less.
    target_timeout_s: float = 10.0
    target_retry_backoff_s: float = 1.0
    # The auditor seals its records into a signed checkpoint every so many records or seconds.
    audit_checkpoint_every_records: int = 1000
    audit_checkpoint_every_s: float = 60.0
    # The audience of the test identity provider's access tokens (the receiver plays the IdP).
    oauth_audience: str = "provisioning-api"
    # Metrics: how often lag and backlog are read, and when a request counts as stuck.
    metrics_refresh_s: float = 5.0
    stuck_after_s: float = 900.0
    stuck_check_interval_s: float = 30.0

    @classmethod
    def default(cls, repo: Path) -> StackConfig:
        return cls(
            repo=repo,
            root=repo / ".local",
            pg_port=55432,
            kafka_port=9092,
            kafka_controller_port=9093,
            service_ports=_ports_from(8000),
            ldap_port=3389,
            cloud_port=4566,
            receiver_port=8090,
        )

    @classmethod
    def for_tests(cls, repo: Path, slot: int | None = None) -> StackConfig:
        # TEST_STACK_SLOT=<n> gives a second checkout's (or a second developer's) test run a
        # stack of its own: its own directory and every port moved by n * 1000.
        if slot is None:
            slot = int(os.environ.get("TEST_STACK_SLOT", "0"))
        shift = 1000 * slot
        return cls(
            repo=repo,
            root=repo / ".local" / ("test" if slot == 0 else f"test-{slot}"),
            pg_port=55433 + slot,
            kafka_port=19092 + shift,
            kafka_controller_port=19093 + shift,
            service_ports=_ports_from(18000 + shift),
            ldap_port=13389 + shift,
            cloud_port=14566 + shift,
            receiver_port=18090 + shift,
            pg_fsync=False,
            seed_file="tests/seed/organisation.json",
            entitlements_file="tests/seed/entitlements.json",
            inject_faults=True,
            lease_sweep_interval_s=1.0,  # the tests' leases last seconds
            approval_sweep_interval_s=0.5,
            approval_time_cap_s=6.0,  # days of escalation and auto-denial, watched in seconds
            # Retries over about 8-17 s, so that an outage and a `failed` are both testable.
            webhook_delivery_interval_s=0.2,
            webhook_backoff_base_s=0.2,
            webhook_backoff_cap_s=2.0,
            webhook_max_attempts=12,
            webhook_timeout_s=2.0,
            drift_check_interval_s=2.0,
            upkeep_interval_s=1.0,
            retention_cap_s=3.0,  # an account's 30-day retention, watched in seconds
            target_timeout_s=5.0,
            target_retry_backoff_s=0.3,
            audit_checkpoint_every_records=100,
            audit_checkpoint_every_s=1.0,
            metrics_refresh_s=1.0,
            stuck_after_s=3.0,  # an approval wait (capped at 6 s) is watched becoming stuck
            stuck_check_interval_s=0.5,
        )

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def pg_socket_dir(self) -> Path:
        return self.run_dir / "pg"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def traces_dir(self) -> Path:
        return self.root / "traces"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def credentials_key_file(self) -> Path:
        return self.secrets_dir / "credentials.key"

    @property
    def webhook_key_file(self) -> Path:
        return self.secrets_dir / "webhooks.key"

    @property
    def audit_chain_key_file(self) -> Path:
        return self.secrets_dir / "audit-chain.key"

    @property
    def audit_signing_key_file(self) -> Path:
        return self.secrets_dir / "audit-signing-key.pem"

    @property
    def audit_checkpoint_file(self) -> Path:
        # Outside the audit database, on purpose: what a rewrite of the database cannot reach.
        return self.root / "audit" / "checkpoints.jsonl"

    @property
    def idp_private_key_file(self) -> Path:
        return self.secrets_dir / "idp-signing-key.pem"

    @property
    def idp_jwks_file(self) -> Path:
        return self.secrets_dir / "idp-jwks.json"

    @property
    def oauth_issuer(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}/idp"

    @property
    def oauth_jwks_url(self) -> str:
        return f"{self.oauth_issuer}/jwks.json"

    @property
    def admin_key_file(self) -> Path:
        return self.root / "admin-api-key"

    @property
    def ldap_dir(self) -> Path:
        return self.root / "ldap"

    @property
    def receiver_dir(self) -> Path:
        return self.root / "receiver"

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_libs(self) -> Path:
        # Shared by both profiles: the jars are ~50 MB and identical.
        return self.repo / ".local" / "kafka" / "libs"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def session_lock(self) -> Path:
        # Not part of state_paths(): deleting a held lock file would let a second holder in.
        return self.root / "session.lock"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def state_paths(self) -> list[Path]:
        """What `--fresh` wipes: not the whole root, which holds the jars and the test root."""
        return [
            self.pg_data,
            self.run_dir,
            self.logs_dir,
            self.traces_dir,
            self.secrets_dir,
            self.admin_key_file,
            self.kafka_data,
            self.kafka_properties,
            self.ldap_dir,
            self.receiver_dir,
            self.audit_checkpoint_file.parent,
        ]
