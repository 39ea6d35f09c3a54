"""The request-api's answers, typed: what the OpenAPI document promises and a generated
client reads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.contracts.requests import RequestStatus

if TYPE_CHECKING:
    from catalog import CatalogItem
    from request_api.models import ProvisioningRequest, Resource


class Reason(BaseModel):
    """Why a request is where it is: machine-readable `step` and `code`, words in `message`;
    rejections name their `field` and `policy` version, a cancel `by` whom and `at` when."""

    model_config = ConfigDict(extra="allow")

    step: str | None = None
    code: str | None = None
    field: str | None = None
    message: str = ""


class RequestView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "0b6f7c1e-7c55-4c1b-9f3e-4a0f7d2b9e11",
                "catalog_item": "postgres_database",
                "parameters": {"name": "orders"},
                "requester": "alice",
                "tenant": "default",
                "operation": "provision",
                "status": "submitted",
                "reasons": [],
                "resource_id": "6d2f4a9b-1c3e-4f5a-8b7c-9d0e1f2a3b4c",
                "cancel_requested": False,
                "bundle_id": None,
                "expires_at": None,
                "version": 1,
                "created_at": "2026-12-07T09:00:00+00:00",
                "updated_at": "2026-12-07T09:00:00+00:00",
            }
        }
    )

    id: uuid.UUID
    catalog_item: str
    parameters: dict[str, Any]
    requester: str
    tenant: str
    operation: Literal["provision", "modify", "deprovision"]
    status: RequestStatus
    reasons: list[Reason]
    resource_id: uuid.UUID | None
    cancel_requested: bool
    bundle_id: uuid.UUID | None
    expires_at: datetime | None
    # Goes with `ETag` and `If-Match`: bumped by every change.
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ProvisioningRequest) -> RequestView:
        return cls(
            id=row.id,
            catalog_item=row.catalog_item,
            parameters=row.parameters,
            requester=row.requester,
            tenant=row.tenant,
            operation=row.operation,
            status=RequestStatus(row.status),
            reasons=[Reason.model_validate(reason) for reason in row.reasons],
            resource_id=row.resource_id,
            cancel_requested=row.cancel_requested_at is not None,
            bundle_id=row.bundle_id,
            expires_at=row.expires_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class Drift(BaseModel):
    differences: list[str]
    detected_at: datetime


class RequestOfResource(BaseModel):
    id: uuid.UUID
    operation: str
    status: RequestStatus


class ResourceView(BaseModel):
    id: uuid.UUID
    request_id: uuid.UUID
    catalog_item: str
    owner: str
    tenant: str
    state: Literal["active", "retiring", "retired"]
    parameters: dict[str, Any]
    # What the target made (host, port, names): never a secret (see /credentials).
    outputs: dict[str, Any]
    drift: Drift | None
    monthly_cost: float
    version: int
    created_at: datetime
    retired_at: datetime | None
    expires_at: datetime | None
    requests: list[RequestOfResource] = Field(
        description="The requests that provisioned, changed or retired it, oldest first."
    )

    @classmethod
    def of(cls, row: Resource, requests: list[ProvisioningRequest] | None = None) -> ResourceView:
        drift = (
            Drift(differences=row.drift, detected_at=row.drift_detected_at)
            if row.drift and row.drift_detected_at
            else None
        )
        return cls(
            id=row.id,
            request_id=row.request_id,
            catalog_item=row.catalog_item,
            owner=row.owner,
            tenant=row.tenant,
            state=row.state,
            parameters=row.parameters,
            outputs=row.outputs,
            drift=drift,
            monthly_cost=row.monthly_cost,
            version=row.version,
            created_at=row.created_at,
            retired_at=row.retired_at,
            expires_at=row.expires_at,
            requests=[
                RequestOfResource(id=r.id, operation=r.operation, status=RequestStatus(r.status))
                for r in requests or []
            ],
        )


class CatalogItemView(BaseModel):
    name: str
    title: str
    description: str
    # The JSON Schema a request's `parameters` must meet.
    parameters: dict[str, Any]
    allowed_roles: list[str]
    monthly_cost: float

    @classmethod
    def of(cls, item: CatalogItem) -> CatalogItemView:
        return cls.model_validate(item.public())


class CatalogPage(BaseModel):
    items: list[CatalogItemView]


class ApprovalRoute(BaseModel):
    reasons: list[Reason]
    # The stages that would decide, in order.
    stages: list[str]


class Cost(BaseModel):
    monthly: float
    currency: str


class Placement(BaseModel):
    server_id: str
    units: dict[str, Any]


class Plan(BaseModel):
    """A dry run's answer: the decision the request would get now, nothing reserved."""

    dry_run: Literal[True]
    catalog_item: str
    policy_version: str
    decision: Literal["accepted", "rejected", "backordered", "failed"]
    reasons: list[Reason]
    approval_required: bool
    approval: ApprovalRoute | None
    cost: Cost
    # Per quota dimension: the tenant's limit and use before and after.
    quota: dict[str, Any]
    allocation: Placement | None


def header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


LOCATION = {"Location": header("Where the accepted request is followed: `/v1/requests/{id}`")}
ETAG = {"ETag": header("The object's version; send it back in `If-Match` to change it")}
# `openapi_extra` of a route the idempotency middleware guards.
IDEMPOTENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Makes a retry safe: the same key answers with the first answer "
            "(marked `Idempotent-Replayed: true`) instead of doing it again",
        }
    ]
}
