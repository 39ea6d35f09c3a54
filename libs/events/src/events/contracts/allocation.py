"""Events published by the allocator."""

from typing import Any

from events.envelope import Event

TOPIC = "provisioning.allocation"


class ResourceAllocated(Event):
    type = "resource.allocated"
    topic = TOPIC

    catalog_item: str
    parameters: dict[str, Any]
    requester: str
    server_id: str


class AllocationFailed(Event):
    type = "allocation.failed"
    topic = TOPIC

    reason: str
