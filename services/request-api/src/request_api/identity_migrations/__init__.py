"""The API keys' database (`identity`) as Alembic revisions. The request-api owns it: it
issues, rotates and revokes keys; the allocator, deployer and auditor only read them. Their
grants are the cluster's (default privileges), so no row security or login grants here."""

from apikeys.store import Base
from events.migrations import Schema

SCHEMA = Schema("request_api:identity_migrations", (Base.metadata,))
