"""Deployer settings, from the environment. Each target system is configured by JSON naming
its server id (the allocator's `target`) and how to reach it; secrets are read from files."""

from pathlib import Path

from deployer.drivers.aws.clients import AwsTarget
from deployer.drivers.ldap import LdapTarget
from deployer.drivers.postgres import TargetServer
from deployer.drivers.webhooks import WebhookTarget
from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "deployer"
    identity_database_url: str
    # TARGET_SERVERS: {"pg-local": {"admin_dsn": ..., "host": ..., "port": ...}}
    target_servers: dict[str, TargetServer]
    # LDAP_TARGETS: {"ldap": {"url": ..., "bind_dn": ..., "bind_password_file": ..., ...}}
    ldap_targets: dict[str, LdapTarget] = {}
    # AWS_TARGETS: {"aws": {"endpoint_url": null for AWS itself, "region": ..., ...}}
    aws_targets: dict[str, AwsTarget] = {}
    # LICENCE_TARGETS: {"licence-vendor": {"url": ..., "secret_file": ...}}, and MDM_TARGETS
    # alike: reached through signed webhooks.
    licence_targets: dict[str, WebhookTarget] = {}
    mdm_targets: dict[str, WebhookTarget] = {}
    credentials_key_file: Path
    target_timeout_s: float = 10.0
    # A target that is down is retried for about 30 s before the request fails.
    handler_max_attempts: int = 6
    handler_retry_backoff_s: float = 1.0
    # Active resources are re-verified for drift this often (each at most once per interval).
    drift_check_interval_s: float = 300.0
    # How often the upkeep looks for resources due for a drift check or a deletion.
    upkeep_interval_s: float = 10.0
    # Deprovisioned resources are deleted when the catalog's retention ends; a test stack
    # caps it so that the deletion can be watched.
    retention_cap_s: float | None = None
