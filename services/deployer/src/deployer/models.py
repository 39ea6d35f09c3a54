"""The deployer's tables: encrypted credentials, revealed once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, LargeBinary, MetaData, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class DeploymentState(Base):
    """Where a request stands at the deployer. Deploying and cancelling both lock this row,
    so whichever comes second sees what the first did."""

    __tablename__ = "deployment_states"

    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # new | deployed | cancelled | rolled_back
    state: Mapped[str] = mapped_column(String(20))
    # What was deployed, so that a late cancel can remove it.
    server_id: Mapped[str | None] = mapped_column(String(100))
    resource_id: Mapped[uuid.UUID | None]
    configuration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Credential(Base):
    __tablename__ = "credentials"

    resource_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    username: Mapped[str] = mapped_column(String(100))
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
