"""Events published by the request-api."""

from typing import Any

from events.envelope import Event

TOPIC = "provisioning.requests"


class RequestSubmitted(Event):
    type = "request.submitted"
    topic = TOPIC

    catalog_item: str
    parameters: dict[str, Any]
    requester: str
