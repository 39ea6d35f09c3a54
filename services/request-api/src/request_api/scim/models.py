"""SCIM users and groups as the identity provider sent them, with the columns a filter reads
and the provisioning they triggered."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from request_api.models import Base


class ScimUser(Base):
    __tablename__ = "scim_users"
    __table_args__ = (
        # userName is unique per tenant, compared without case (RFC 7643 §4.1.1).
        Index("scim_users_user_name", "tenant", "user_name_key", unique=True),
        Index("scim_users_person", "tenant", "person", unique=True),
        Index("scim_users_access_pending", "id", postgresql_where=text("access_pending")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    # The resource as the IdP last wrote it (no id, meta, groups or password).
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    user_name: Mapped[str] = mapped_column(String(300))
    user_name_key: Mapped[str] = mapped_column(String(300))
    display_name: Mapped[str | None] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300))
    family_name: Mapped[str | None] = mapped_column(String(300))
    # The primary e-mail (else the first): what `emails.value` filters on.
    email: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool]
    # Who the platform provisions for: the assignee of what onboarding files.
    person: Mapped[str] = mapped_column(String(64))
    onboardings: Mapped[int] = mapped_column(default=0)
    directory_account_id: Mapped[uuid.UUID | None]
    # A change of access waits for the directory account, still being provisioned.
    access_pending: Mapped[bool] = mapped_column(default=False)
    # Every request this user's lifecycle filed, oldest first.
    request_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_modified: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ScimGroup(Base):
    __tablename__ = "scim_groups"
    __table_args__ = (Index("scim_groups_tenant", "tenant"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    # As the IdP last wrote it, members included.
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    display_name: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_modified: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ScimMembership(Base):
    """A user directly in a group: what the user's `groups` and directory groups come from."""

    __tablename__ = "scim_memberships"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scim_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scim_users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant: Mapped[str] = mapped_column(String(100))
