"""Event contracts' base class and the CloudEvents 1.0 envelope they travel in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """A fact that happened to one provisioning request.

    Subclasses name their dotted `type`, the `topic` their producer publishes on and their
    contract `version`; within a version, changes only add optional fields.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    topic: ClassVar[str]
    version: ClassVar[int] = 1

    request_id: uuid.UUID


class Envelope(BaseModel):
    """CloudEvents 1.0 in structured JSON mode; `dataversion` is our extension attribute."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataversion: int = Field(default=1, ge=1)
    # Whose request the event is about (an extension attribute): set where the event is
    # staged, from the event itself, the transaction's tenant or the event it answers, so
    # that a consumer never has to infer it from events that may not have reached it yet.
    tenant: str | None = Field(default=None, min_length=1, max_length=100)
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, *, source: str, tenant: str | None = None) -> Envelope:
        stated = getattr(event, "tenant", None)
        return cls(
            id=uuid.uuid4(),
            source=source,
            type=event.type,
            subject=str(event.request_id),
            time=datetime.now(UTC),
            dataversion=event.version,
            tenant=stated if isinstance(stated, str) and stated else tenant,
            data=event.model_dump(mode="json"),
        )

    def tenant_of_request(self) -> str | None:
        """The tenant the envelope names, else the one its data states (events staged
        before envelopes carried it)."""
        stated = self.data.get("tenant")
        return self.tenant or (stated if isinstance(stated, str) and stated else None)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
