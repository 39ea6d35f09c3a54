"""What every pipeline event carries about its request, so no step has to ask another."""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Operation = Literal["provision", "deprovision"]


class RequestFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    catalog_item: str
    parameters: dict[str, Any] = {}
    requester: str
    tenant: str = "default"
    operation: Operation = "provision"
    # Assigned when the request is accepted; a deprovision names the resource it removes.
    resource_id: uuid.UUID | None = None


class Problem(BaseModel):
    """One machine-readable reason: a stable `code`, the `field` if one is at fault, and a
    sentence for people."""

    model_config = ConfigDict(frozen=True)

    field: str | None = None
    message: str
    code: str | None = None
