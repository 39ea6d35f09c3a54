"""What every pipeline event carries about its request, so no step has to ask another."""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Operation = Literal["provision", "modify", "deprovision"]


class RequestFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    catalog_item: str
    parameters: dict[str, Any] = {}
    requester: str
    tenant: str = "default"
    operation: Operation = "provision"
    # Assigned when the request is accepted; a modify or deprovision names its resource.
    resource_id: uuid.UUID | None = None
    # A modify that asks for a new generated secret (the old one stops working).
    rotate_credentials: bool = False

    @property
    def owner(self) -> str:
        """The person a resource is for: its assignee when the item has one (a licence, a
        laptop, an account filed by HR), else whoever asked."""
        return str(self.parameters.get("assignee") or self.requester)


class Problem(BaseModel):
    """One machine-readable reason: a stable `code`, the `field` if one is at fault, and a
    sentence for people."""

    model_config = ConfigDict(frozen=True)

    field: str | None = None
    message: str
    code: str | None = None
