"""Events published by the allocator."""

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.allocation"


class ResourceAllocated(Event, RequestFacts):
    type = "resource.allocated"
    topic = TOPIC

    server_id: str
    quota: dict[str, int] = {}
    # Identifiable units taken from pools, by role: {"seat": "figma-seat-007"}.
    units: dict[str, str] = {}


class AllocationFailed(Event):
    type = "allocation.failed"
    topic = TOPIC

    reason: str
    code: str | None = None


class AllocationBackordered(Event):
    """Out of stock, and the item may wait: the request is allocated when stock arrives."""

    type = "allocation.backordered"
    topic = TOPIC

    reason: str


class QuotaWarningReached(Event):
    """A tenant's use of a dimension passed its warning level with this request."""

    type = "quota.warning_reached"
    topic = TOPIC

    tenant: str
    dimension: str
    in_use: int
    warning: int
    limit: int


class AllocationReleased(Event):
    """Capacity and quota given back: the last step of a rollback, a cancel or a deprovision."""

    type = "allocation.released"
    topic = TOPIC

    operation: str = "provision"
    reason: str
