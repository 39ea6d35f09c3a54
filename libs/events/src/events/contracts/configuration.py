"""Events published by the configurator."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.configuration"


class PostgresConfiguration(BaseModel):
    """The postgres driver's configuration: a database, or a schema in a shared database."""

    model_config = ConfigDict(frozen=True)

    database: str
    schema_name: str | None = None
    owner_role: str
    connection_limit: int
    extensions: list[str] = []


class ResourceConfigured(Event, RequestFacts):
    type = "resource.configured"
    topic = TOPIC

    server_id: str
    # Rendered from the item's template; the driver validates it into its own model
    # (PostgresConfiguration for "postgres").
    driver: str = "postgres"
    configuration: dict[str, Any]


class ConfigurationFailed(Event):
    type = "configuration.failed"
    topic = TOPIC

    server_id: str
    reason: str
    code: str | None = None


class ConfigurationRolledBack(Event):
    """The configuration step undone (it keeps no state): the allocator's turn next."""

    type = "configuration.rolled_back"
    topic = TOPIC

    server_id: str
