"""Reactions of the deployer to events."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from deployer import repository
from deployer.credentials import CredentialCipher
from deployer.targets import PostgresTargets
from events import HandlerContext, Router
from events.contracts.configuration import ResourceConfigured
from events.contracts.deployment import ProvisioningCompleted, ProvisioningFailed

router = Router()

RESOURCE_IDS = uuid.UUID("0d9b3c58-2f6e-4a53-9f0e-3b1f6f1d2a77")


@dataclass(frozen=True)
class Deps:
    targets: PostgresTargets
    cipher: CredentialCipher


def resource_id_for(request_id: uuid.UUID) -> uuid.UUID:
    """The same request always yields the same resource, whatever is redelivered."""
    return uuid.uuid5(RESOURCE_IDS, str(request_id))


def provisioning_failed(event: ResourceConfigured, reason: str) -> ProvisioningFailed:
    return ProvisioningFailed(
        request_id=event.request_id,
        catalog_item=event.catalog_item,
        server_id=event.server_id,
        reason=reason,
    )


@router.on(ResourceConfigured, on_failure=provisioning_failed)
async def deploy(event: ResourceConfigured, ctx: HandlerContext[Deps]) -> None:
    password = secrets.token_urlsafe(24)
    deployed = await ctx.deps.targets.deploy(
        event.server_id, event.configuration, request_id=event.request_id, password=password
    )
    resource_id = resource_id_for(event.request_id)
    nonce, ciphertext = ctx.deps.cipher.encrypt(resource_id, password)
    await repository.save_credential(
        ctx.session,
        resource_id=resource_id,
        request_id=event.request_id,
        username=deployed.username,
        nonce=nonce,
        ciphertext=ciphertext,
    )
    ctx.emit(
        ProvisioningCompleted(
            request_id=event.request_id,
            resource_id=resource_id,
            catalog_item=event.catalog_item,
            requester=event.requester,
            server_id=event.server_id,
            outputs=deployed.outputs,
            credentials_ref=f"deployer:credentials/{resource_id}",
        )
    )
