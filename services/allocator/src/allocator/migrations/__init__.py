"""The allocator's database as Alembic revisions: its tables and the runtime's inbox and
outbox (see events.migrations)."""

from allocator import models
from events.migrations import Schema

SCHEMA = Schema.of_service("allocator", "allocator:migrations", models.Base.metadata)
