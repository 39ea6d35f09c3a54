"""Allocator settings, from the environment."""

from pathlib import Path

from pydantic import BaseModel, Field

from events import ServiceSettings


class PoolServer(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    capacity: dict[str, int]


class Settings(ServiceSettings):
    service_name: str = "allocator"
    identity_database_url: str
    # JSON in SERVER_POOL: which target servers exist and how much of each item they can hold.
    server_pool: list[PoolServer] = [
        PoolServer(id="pg-local", capacity={"postgres_database": 200, "postgres_schema": 100_000})
    ]
    # The organisation's tenants and their quotas (deploy/seed/organisation.json).
    seed_file: Path | None = None
    # How often waiting backorders look for new stock.
    backorder_interval_s: float = 2.0
