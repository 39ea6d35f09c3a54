"""Approval stages and the decisions taken on them, each row inside its request's tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from request_api.models import Base

PENDING, APPROVED, DENIED = "pending", "approved", "denied"
# The request left awaiting approval another way (cancelled): nobody decides any more.
WITHDRAWN = "withdrawn"


class ApprovalStageRow(Base):
    """One stage of one request's approval, opened when the previous one was approved."""

    __tablename__ = "approval_stages"
    __table_args__ = (
        UniqueConstraint("request_id", "position"),
        # The clock's question: which pending stages are due?
        Index(
            "approval_stages_pending_deadlines",
            "escalate_at",
            "deny_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(index=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    requester: Mapped[str] = mapped_column(String(200))
    catalog_item: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Why the request needs approval, as the validator said.
    reasons: Mapped[list[str]] = mapped_column(JSONB, default=list)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    # The stage as the catalog declared it when it opened (catalog.ApprovalStage.as_dict()).
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), index=True, default=PENDING)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deny_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The cap on every wait this approval runs under (a test stack's setting); the next
    # stage opens under the same one.
    time_cap_s: Mapped[float | None]


class ApprovalDecision(Base):
    """One person's decision on a stage: at most one each."""

    __tablename__ = "approval_decisions"
    __table_args__ = (UniqueConstraint("approval_id", "approver"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    approval_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_stages.id"), index=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    approver: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    justification: Mapped[str] = mapped_column(Text)
    as_fallback: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
