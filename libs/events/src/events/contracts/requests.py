"""Events published by the request-api."""

import uuid
from datetime import datetime

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.requests"


class RequestSubmitted(Event, RequestFacts):
    type = "request.submitted"
    topic = TOPIC

    requester_roles: list[str] = []


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
    type = "request.approved"
    topic = TOPIC

    approver: str
    justification: str


class RequestDenied(Event):
    type = "request.denied"
    topic = TOPIC

    approver: str
    justification: str


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
