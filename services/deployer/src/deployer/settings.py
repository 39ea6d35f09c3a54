"""Deployer settings, from the environment."""

from pathlib import Path

from pydantic import BaseModel, Field

from events import ServiceSettings


class TargetServer(BaseModel):
    """How the deployer reaches a pool server (`admin_dsn`) and how requesters do."""

    admin_dsn: str = Field(repr=False)
    host: str
    port: int


class Settings(ServiceSettings):
    service_name: str = "deployer"
    identity_database_url: str
    # JSON in TARGET_SERVERS: {"pg-local": {"admin_dsn": ..., "host": ..., "port": ...}}
    target_servers: dict[str, TargetServer]
    credentials_key_file: Path
    target_timeout_s: float = 10.0
    # A target that is down is retried for about 30 s before the request fails.
    handler_max_attempts: int = 6
    handler_retry_backoff_s: float = 1.0
