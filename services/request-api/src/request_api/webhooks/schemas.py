"""Bodies of the webhook routes, and the checks that need the service's settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from events.http import ProblemError
from events.outbound import AllowList
from request_api.webhooks import event_types, rules

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z_.*]+$")]
# Free text, on one line or several, without other control characters.
Description = Annotated[
    str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    # Event types, with `*` wildcards: `request.completed`, `request.*`, `*`.
    event_types: list[Pattern] = Field(min_length=1, max_length=50)
    description: Description | None = None


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[Pattern] | None = Field(default=None, min_length=1, max_length=50)
    description: Description | None = None
    enabled: bool | None = None


def check(url: str | None, patterns: list[str] | None, *, allow_list: AllowList) -> None:
    """422 naming each field that cannot be accepted."""
    errors: list[dict[str, Any]] = []
    if url is not None and (problem := rules.url_problem(url, allow_list=allow_list)):
        errors.append({"field": "url", "message": problem})
    for pattern in event_types.unknown_patterns(patterns or []):
        errors.append({"field": "event_types", "message": f"{pattern!r} matches no event type"})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ProblemError(422, "Invalid webhook subscription", detail, errors=errors)


class Subscription(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription):
    """A subscription as created or rotated: `secret` signs its deliveries (Standard Webhooks)
    and is shown this once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8e4c1e-9d3f-4c8e-a7f4-2f6b1d9e5a10",
                    "url": "https://ci.example.com/hooks/provisioning",
                    "event_types": ["request.completed", "request.rejected", "resource.*"],
                    "description": "CI pipeline",
                    "enabled": True,
                    "created_by": "ci-bot",
                    "created_at": "2026-01-05T10:00:00+00:00",
                    "updated_at": "2026-01-05T10:00:00+00:00",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    secret: str


class Subscriptions(BaseModel):
    items: list[Subscription]


class Delivery(BaseModel):
    """One event owed to a subscription: `pending` (with `next_attempt_at`), `succeeded`, or
    `failed` after the last attempt (redeliverable)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5d0c7f5e-3f0a-4b7a-9a55-0c7a4f1e2b33",
                    "subscription_id": "0b8e4c1e-9d3f-4c8e-a7f4-2f6b1d9e5a10",
                    "event_id": "a1f6e2d4-7c3b-4e8a-9f1d-6b2c5e8a7d90",
                    "event_type": "request.completed",
                    "status": "pending",
                    "attempts": 2,
                    "last_status_code": 503,
                    "last_error": "http_503",
                    "next_attempt_at": "2026-01-05T10:00:20+00:00",
                    "last_attempt_at": "2026-01-05T10:00:10+00:00",
                    "delivered_at": None,
                    "created_at": "2026-01-05T10:00:00+00:00",
                }
            ]
        }
    )

    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID | None
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class Deliveries(BaseModel):
    items: list[Delivery]
