"""The request-api's database as Alembic revisions: its read model, approvals, SCIM,
webhooks and idempotency keys, and the runtime's inbox and outbox (see events.migrations)."""

from events.migrations import Schema
from request_api import models
from request_api.approvals import models as approvals
from request_api.idempotency import models as idempotency
from request_api.scim import models as scim
from request_api.webhooks import models as webhooks

# Imported for their tables, which join the one metadata.
FEATURES = (approvals, idempotency, scim, webhooks)

SCHEMA = Schema.of_service("request-api", "request_api:migrations", models.Base.metadata)
