"""The audit history: one row per event, append-only, each row chained to the one before."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, MetaData, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from events import tenancy

APPEND_ONLY = {tenancy.PRIVILEGES: "SELECT, INSERT"}


class Base(DeclarativeBase):
    metadata = MetaData()


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = {"info": APPEND_ONLY}

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    # Whose request it is (from the event, else from the request's earlier records): a
    # tenant's callers read only their own, through row-level security. Unknown: nobody's.
    tenant: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    trace_id: Mapped[str | None] = mapped_column(String(32))
    # What the record says, derived from the event (auditor.facts): who did what to which
    # request and resource, with what outcome and why, and the status before and after.
    service: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str | None] = mapped_column(String(200))
    on_behalf_of: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(100), index=True)
    resource_id: Mapped[str | None] = mapped_column(String(100), index=True)
    step: Mapped[str] = mapped_column(String(50))
    outcome: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(String(2000))
    before: Mapped[str | None] = mapped_column(String(50))
    after: Mapped[str | None] = mapped_column(String(50))
    # The event as received, with anything named like a secret removed.
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The Merkle leaf hash of the record's canonical content, and its link in the keyed chain.
    leaf: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Checkpoint(Base):
    """A signed Merkle root over the records `first_seq`..`last_seq` (also published outside
    the database: a Kafka topic and a file)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = {"info": APPEND_ONLY}

    last_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int]
    root: Mapped[str] = mapped_column(String(64))
    prev_root: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(200))


# Append-only is the database's rule, not a convention: the auditor's login is granted only
# SELECT and INSERT (it is not the owner), and triggers (migrations/versions/0001_initial.py)
# refuse UPDATE, DELETE and TRUNCATE to everyone else short of a superuser who drops them
# (which the checkpoints then reveal).
