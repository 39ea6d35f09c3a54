"""Events published by the deployer. Secrets never travel here: only a reference to them."""

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.deployment"


class Leftover(BaseModel):
    """What a failed deployment may have left in a target, and everything its driver needs to
    find and remove it: carried by the failure events so the undo does not depend on state
    that the failed transaction rolled back."""

    model_config = ConfigDict(frozen=True)

    driver: str
    server_id: str
    configuration: dict[str, Any]
    resource_id: uuid.UUID
    tenant: str
    owner: str


class ResourceDeployed(Event):
    """Created in the target system."""

    type = "resource.deployed"
    topic = TOPIC

    resource_id: uuid.UUID
    server_id: str


class ResourceVerified(Event):
    """Checked through the target's own protocol, as the requester will use it."""

    type = "resource.verified"
    topic = TOPIC

    resource_id: uuid.UUID


class ProvisioningCompleted(Event, RequestFacts):
    """Handed over (provision), changed (modify) or taken away from its users (deprovision:
    removed, or disabled and kept for the catalog's retention period)."""

    type = "provisioning.completed"
    topic = TOPIC

    resource_id: uuid.UUID
    server_id: str
    outputs: dict[str, str | int] = {}
    credentials_ref: str | None = None


class ProvisioningFailed(Event):
    type = "provisioning.failed"
    topic = TOPIC

    catalog_item: str
    server_id: str
    reason: str
    operation: str = "provision"
    step: str = "deploy"
    code: str | None = None
    leftover: Leftover | None = None


class DeploymentRolledBack(Event):
    """Whatever a failed or cancelled deployment left in the target has been removed."""

    type = "deployment.rolled_back"
    topic = TOPIC

    server_id: str


class CompensationFailed(Event):
    """Undoing a step failed: the request needs attention (and can be retried)."""

    type = "compensation.failed"
    topic = TOPIC

    step: str
    reason: str
    # What is left to remove, kept by the deployer for a retry.
    server_id: str | None = None
    leftover: Leftover | None = None


class DriftDetected(Event):
    """A resource no longer looks as the platform left it: changed or deleted behind its back.
    `request_id` is the request that created the resource."""

    type = "drift.detected"
    topic = TOPIC

    resource_id: uuid.UUID
    differences: list[str]


class DriftResolved(Event):
    """A resource that had drifted looks as expected again (remediated, or put back)."""

    type = "drift.resolved"
    topic = TOPIC

    resource_id: uuid.UUID


class ResourcePurged(Event):
    """A deprovisioned resource kept for its retention period has now been deleted."""

    type = "resource.purged"
    topic = TOPIC

    resource_id: uuid.UUID
    server_id: str
