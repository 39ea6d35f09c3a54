"""Events published by the validator."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from events.envelope import Event

TOPIC = "provisioning.validation"


class Problem(BaseModel):
    """One reason a request cannot proceed; `field` is a JSON pointer-ish path, or None."""

    model_config = ConfigDict(frozen=True)

    field: str | None
    message: str


class RequestValidated(Event):
    type = "request.validated"
    topic = TOPIC

    catalog_item: str
    parameters: dict[str, Any]
    requester: str


class RequestRejected(Event):
    type = "request.rejected"
    topic = TOPIC

    reasons: list[Problem]


class ValidationFailed(Event):
    """The validator could not decide (an internal error), as opposed to a rejection."""

    type = "validation.failed"
    topic = TOPIC

    reason: str
