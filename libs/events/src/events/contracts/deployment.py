"""Events published by the deployer. Secrets never travel here: only a reference to them."""

import uuid
from typing import Any

from events.contracts.common import RequestFacts
from events.envelope import Event

TOPIC = "provisioning.deployment"


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
    """Handed over (provision) or removed from the target (deprovision)."""

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
    # What the failed step may have left in the target, so that it can be removed.
    driver: str = "postgres"
    configuration: dict[str, Any] | None = None


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
    driver: str = "postgres"
    configuration: dict[str, Any] | None = None
