"""The auditor's database as Alembic revisions: its tables and the runtime's inbox and
outbox (see events.migrations)."""

from auditor import models
from events.migrations import Schema

SCHEMA = Schema.of_service("auditor", "auditor:migrations", models.Base.metadata)
