"""The runtime's own tables, created in every service's database: inbox, outbox and the
outbox's dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, MetaData, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from events import tenancy


class RuntimeBase(DeclarativeBase):
    metadata = MetaData()


class InboxEntry(RuntimeBase):
    """An event this service has processed (or dead-lettered): seen once, never again."""

    __tablename__ = "event_inbox"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OutboxMessage(RuntimeBase):
    """A Kafka message written in the same transaction as the state change that caused it."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    # [[name, value], ...]: trace context of the emitter, so the relay continues its trace.
    headers: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxDeadLetter(RuntimeBase):
    """An outbox message Kafka refused for good (too large, no such topic), moved out of the
    relay's way with why; kept whole, to be fixed and staged again by an operator."""

    __tablename__ = "event_outbox_dead_letter"
    # The service only adds them: what to do with one is an operator's decision.
    __table_args__ = {"info": {tenancy.PRIVILEGES: "SELECT, INSERT"}}

    outbox_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    dead_lettered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
