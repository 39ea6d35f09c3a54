"""The allocator's tables: server capacity, tenant quotas, and one allocation per request."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, MetaData, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class ServerCapacity(Base):
    __tablename__ = "server_capacity"
    __table_args__ = (CheckConstraint("used >= 0 AND used <= capacity", name="within_capacity"),)

    server_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    catalog_item: Mapped[str] = mapped_column(String(100), primary_key=True)
    capacity: Mapped[int]
    used: Mapped[int] = mapped_column(default=0)


class TenantQuota(Base):
    __tablename__ = "tenant_quotas"
    __table_args__ = (CheckConstraint("held >= 0 AND committed >= 0", name="no_negative_usage"),)

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(100), primary_key=True)
    limit: Mapped[int]
    warning: Mapped[int | None]
    held: Mapped[int] = mapped_column(default=0)
    committed: Mapped[int] = mapped_column(default=0)


class Pool(Base):
    """Who a pool of units is for: every tenant (shared, the operator's to stock) or one
    tenant (its admins' to stock), whose requests alone draw from it."""

    __tablename__ = "pools"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # None: shared by every tenant.
    tenant: Mapped[str | None] = mapped_column(String(100))


class PoolUnit(Base):
    """One identifiable finite thing: a licence seat, an IP address, a device's serial."""

    __tablename__ = "pool_units"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit: Mapped[str] = mapped_column(String(100), primary_key=True)
    # free | held | committed
    state: Mapped[str] = mapped_column(String(20), default="free")
    request_id: Mapped[uuid.UUID | None] = mapped_column(index=True)


class Allocation(Base):
    __tablename__ = "allocations"
    __table_args__ = (
        # One live resource per name and item across the pool: no double allocation.
        Index(
            "one_live_name_per_item",
            "catalog_item",
            "name",
            unique=True,
            postgresql_where=text("state IN ('backordered', 'held', 'committed')"),
        ),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resource_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    tenant: Mapped[str] = mapped_column(String(100))
    server_id: Mapped[str | None] = mapped_column(String(100))
    catalog_item: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    quota: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    units: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    # A backordered request's validated event, re-emitted as allocated once stock arrives.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # (backordered ->) held (request in flight) -> committed (resource live) -> released;
    # or refused
    state: Mapped[str] = mapped_column(String(20), default="held")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
