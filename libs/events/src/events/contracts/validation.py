"""Events published by the validator."""

from events.contracts.common import Problem, RequestFacts
from events.envelope import Event

TOPIC = "provisioning.validation"

__all__ = [
    "ApprovalRequired",
    "Problem",
    "RequestRejected",
    "RequestValidated",
    "ValidationFailed",
]


class RequestValidated(Event, RequestFacts):
    type = "request.validated"
    topic = TOPIC


class RequestRejected(Event):
    type = "request.rejected"
    topic = TOPIC

    reasons: list[Problem]
    policy_version: str | None = None


class ValidationFailed(Event):
    """The validator could not decide (an internal error), as opposed to a rejection."""

    type = "validation.failed"
    topic = TOPIC

    reason: str
    code: str | None = None


class ApprovalRequired(Event, RequestFacts):
    """Acceptable, but only with an approver's decision: the request waits for it."""

    type = "request.awaiting_approval"
    topic = TOPIC

    reasons: list[Problem]
