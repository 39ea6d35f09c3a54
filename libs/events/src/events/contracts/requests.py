"""Events published by the request-api."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.requests"

# Where the request-api announces each change of a request's status (`RequestStatusChanged`):
# a topic of its own, so that the pipeline's consumers never read them back and throw them away.
STATUS_TOPIC = "provisioning.request-statuses"


class RequestStatus(StrEnum):
    """A request's status, as the request-api's lifecycle moves it: part of its contract (its
    API answers them, the audit rebuilds them). Which event moves which status to which is
    `events.contracts.lifecycle`."""

    SUBMITTED = "submitted"
    AWAITING_APPROVAL = "awaiting_approval"
    VALIDATED = "validated"
    BACKORDERED = "backordered"
    ALLOCATED = "allocated"
    CONFIGURED = "configured"
    DEPLOYED = "deployed"
    VERIFIED = "verified"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"
    COMPENSATION_FAILED = "compensation_failed"


class RequestSubmitted(Event, RequestFacts):
    type = "request.submitted"
    topic = TOPIC

    requester_roles: list[str] = []
    # A modify's resource as it is: the validator asks approval only for what it raises.
    previous_parameters: dict[str, Any] | None = None


class CancellationRequested(Event):
    """The requester asked to stop. The deployer either stops the request before it deploys,
    or removes what it deployed; the rollback then runs back through the pipeline."""

    type = "request.cancellation_requested"
    topic = TOPIC

    reason: str


class LeaseExpiring(Event):
    """A resource's lease ends soon; at `expires_at` it is deprovisioned."""

    type = "lease.expiring"
    topic = TOPIC

    resource_id: uuid.UUID
    expires_at: datetime


class LeaseExtended(Event):
    type = "lease.extended"
    topic = TOPIC

    resource_id: uuid.UUID
    expires_at: datetime
    extended_by: str


class RequestApproved(Event, RequestFacts):
    """The last approval stage approved: this decision is the one that settled it."""

    type = "request.approved"
    topic = TOPIC

    approver: str
    justification: str
    # The stage this decision settled (absent before multi-stage approvals).
    stage: str | None = None


class RequestDenied(Event):
    """A stage was denied, by an approver or, undecided for too long, by the approval clock."""

    type = "request.denied"
    topic = TOPIC

    approver: str
    justification: str
    stage: str | None = None


class ApprovalDecisionRecorded(Event):
    """One approver's decision on a stage that did not settle the request by itself (a vote
    towards a quorum, or a stage approved with more stages to come). The decision that settles
    the request is `RequestApproved` or `RequestDenied`, which carry the same who and why."""

    type = "approval.decision_recorded"
    topic = TOPIC

    approval_id: uuid.UUID
    stage: str
    approver: str
    decision: Literal["approve", "deny"]
    justification: str
    # Decided as the stage's fallback approver, after it escalated.
    as_fallback: bool = False
    # The stage's state after this decision: still `pending`, or `approved`.
    stage_status: str
    at: datetime


class ApprovalEscalated(Event):
    """A stage stayed undecided too long: its fallback approvers may now decide it."""

    type = "approval.escalated"
    topic = TOPIC

    approval_id: uuid.UUID
    stage: str
    fallback_roles: list[str] = []
    fallback_people: list[str] = []
    deny_at: datetime | None = None
    at: datetime


class CompensationRetryRequested(Event):
    """An operator asks to undo a request again after `compensation.failed`."""

    type = "request.compensation_retry_requested"
    topic = TOPIC

    requested_by: str


class VerificationRequested(Event):
    """Someone asked to re-check a resource in its target now (drift on demand)."""

    type = "resource.verification_requested"
    topic = TOPIC

    resource_id: uuid.UUID
    requested_by: str


class RequestStatusChanged(Event):
    """A request's status moved: staged by the request-api's one doorway for statuses in the
    transaction that moved it, for whoever follows requests (webhooks, the live stream)."""

    type = "request.status_changed"
    topic = STATUS_TOPIC

    request_id: uuid.UUID
    tenant: str
    catalog_item: str
    operation: str
    old: RequestStatus
    new: RequestStatus
    # The event (its `type`) that moved it; the lifecycle table says which may.
    cause: str
    at: datetime
