"""The request-api's read model: requests and the resources they produced."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, MetaData, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from request_api.schemas import RequestView, ResourceView


class Base(DeclarativeBase):
    metadata = MetaData()


# Every change of a request or resource, by an API route or a consumer, gives it a new version
# (its ETag): a trigger (migrations/versions/0001_initial.py), because rows change in many
# statements and none may forget it.


class ProvisioningRequest(Base):
    __tablename__ = "requests"
    # The listings' keyset pages: a tenant's rows in creation order.
    __table_args__ = (
        Index("requests_tenant_created", "tenant", "created_at", "id"),
        # The journal's resource trigger looks up the request acting on a resource.
        Index("requests_by_resource", "resource_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    catalog_item: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    requester: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(100), index=True, default="default")
    operation: Mapped[str] = mapped_column(String(20), default="provision")
    status: Mapped[str] = mapped_column(String(30), index=True)
    # When the request entered its status (updated_at also moves for a cancel flag or late
    # reasons): the time spent in each status is measured from it.
    status_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    resource_id: Mapped[uuid.UUID | None]
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who asked for the cancel: a person, or the platform for a failed bundle's others.
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    bundle_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # A modify that asks for a new secret: kept, so that it still does once approved.
    rotate_credentials: Mapped[bool] = mapped_column(default=False, server_default="false")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    def public(self) -> dict[str, Any]:
        return RequestView.of(self).model_dump(mode="json")


class Bundle(Base):
    """Several items requested together; each is a request of its own."""

    __tablename__ = "bundles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    requester: Mapped[str] = mapped_column(String(200))
    # A failed item then undoes the others: cancelled if in flight, deprovisioned if done.
    all_or_nothing: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (Index("resources_tenant_created", "tenant", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    catalog_item: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(100), index=True, default="default")
    state: Mapped[str] = mapped_column(String(30))
    monthly_cost: Mapped[float] = mapped_column(default=0.0)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    lease_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    server_id: Mapped[str] = mapped_column(String(100))
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    credentials_ref: Mapped[str] = mapped_column(String(200))
    # As last provisioned or modified: a modify starts from these.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # How the target differs from what the platform left, as the deployer last found it.
    drift: Mapped[list[str]] = mapped_column(JSONB, default=list)
    drift_detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def public(self, requests: list[ProvisioningRequest] | None = None) -> dict[str, Any]:
        return ResourceView.of(self, requests).model_dump(mode="json")
