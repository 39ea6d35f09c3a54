"""Events published by the request-api."""

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.requests"


class RequestSubmitted(Event, RequestFacts):
    type = "request.submitted"
    topic = TOPIC

    requester_roles: list[str] = []
