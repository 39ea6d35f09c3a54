"""Events published by the deployer. Secrets never travel here: only a reference to them."""

import uuid

from events.envelope import Event

TOPIC = "provisioning.deployment"


class ProvisioningCompleted(Event):
    type = "provisioning.completed"
    topic = TOPIC

    resource_id: uuid.UUID
    catalog_item: str
    requester: str
    server_id: str
    outputs: dict[str, str | int]
    credentials_ref: str


class ProvisioningFailed(Event):
    type = "provisioning.failed"
    topic = TOPIC

    catalog_item: str
    server_id: str
    reason: str
