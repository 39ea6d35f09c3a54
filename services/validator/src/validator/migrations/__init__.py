"""The validator's database as Alembic revisions: only the runtime's inbox and outbox
(see events.migrations)."""

from events.migrations import Schema

SCHEMA = Schema.of_service("validator", "validator:migrations")
