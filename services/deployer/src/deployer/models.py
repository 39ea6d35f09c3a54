"""The deployer's tables: where each request stands, the resources it manages, and their
encrypted credentials (revealed once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, LargeBinary, MetaData, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class DeploymentState(Base):
    """Where a request stands at the deployer. Deploying and cancelling both lock this row,
    so whichever comes second sees what the first did."""

    __tablename__ = "deployment_states"

    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # new | deployed | cancelled | rolled_back | compensation_failed
    state: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[uuid.UUID | None]
    # What is in the target (events.contracts.deployment.Leftover), so that a late cancel or
    # a retried compensation can remove it.
    leftover: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ManagedResource(Base):
    """A resource the deployer created and still looks after: re-verified for drift while
    active, deleted when its retention ends after a deprovision."""

    __tablename__ = "managed_resources"
    __table_args__ = (
        Index(
            "managed_resources_due_for_check",
            "checked_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "managed_resources_due_for_deletion",
            "delete_after",
            postgresql_where=text("status = 'disabled'"),
        ),
    )

    resource_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # The request that created it: the mark its driver left in the target.
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    catalog_item: Mapped[str] = mapped_column(String(100))
    driver: Mapped[str] = mapped_column(String(50))
    server_id: Mapped[str] = mapped_column(String(100))
    tenant: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(200))
    # Who asked for it (the provision's requester): with the owner, who may reveal its secret.
    requester: Mapped[str | None] = mapped_column(String(200))
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # active | disabled (deprovisioned, kept until delete_after) | removed
    status: Mapped[str] = mapped_column(String(20))
    # How the target differed at the last check; [] when as expected.
    drift: Mapped[list[str]] = mapped_column(JSONB, default=list)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delete_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    __tablename__ = "credentials"

    resource_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # The request that generated the current secret (a provision or a rotation).
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    # Whose it is: the reveal runs inside the caller's tenant (row-level security).
    tenant: Mapped[str] = mapped_column(String(100))
    username: Mapped[str] = mapped_column(String(100))
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
