"""The deployer's database as Alembic revisions: its tables and the runtime's inbox and
outbox (see events.migrations)."""

from deployer import models
from events.migrations import Schema

SCHEMA = Schema.of_service("deployer", "deployer:migrations", models.Base.metadata)
