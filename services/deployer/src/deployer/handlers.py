"""Reactions of the deployer to events: create and verify, remove on deprovision, and undo a
failed deployment."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from deployer import repository
from deployer.credentials import CredentialCipher
from deployer.targets import PostgresTargets
from events import HandlerContext, PermanentError, Router
from events.contracts.configuration import PostgresConfiguration, ResourceConfigured
from events.contracts.deployment import (
    CompensationFailed,
    DeploymentRolledBack,
    ProvisioningCompleted,
    ProvisioningFailed,
    ResourceDeployed,
    ResourceVerified,
)
from events.contracts.requests import CancellationRequested, CompensationRetryRequested

router = Router()

RESOURCE_IDS = uuid.UUID("0d9b3c58-2f6e-4a53-9f0e-3b1f6f1d2a77")


@dataclass(frozen=True)
class Deps:
    targets: PostgresTargets
    cipher: CredentialCipher


Context = HandlerContext[Deps]


def resource_id_of(event: ResourceConfigured) -> uuid.UUID:
    """Assigned at submission; events from before that derive it from the request."""
    return event.resource_id or uuid.uuid5(RESOURCE_IDS, str(event.request_id))


def provisioning_failed(event: ResourceConfigured, reason: str) -> ProvisioningFailed:
    return ProvisioningFailed(
        request_id=event.request_id,
        catalog_item=event.catalog_item,
        server_id=event.server_id,
        reason=reason,
        operation=event.operation,
        code="target_failed",
        driver=event.driver,
        configuration=event.configuration,
    )


@router.on(ResourceConfigured, on_failure=provisioning_failed)
async def deploy(event: ResourceConfigured, ctx: Context) -> None:
    if event.operation == "deprovision":
        await _remove(event, ctx)
        return
    state = await repository.lock_state(ctx.session, event.request_id)
    if state.state == "cancelled":
        # Cancelled before anything was created: the rollback starts here, with nothing to do.
        state.state = "rolled_back"
        ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=event.server_id))
        return
    password = secrets.token_urlsafe(24)
    deployed = await ctx.deps.targets.deploy(
        event.server_id, _postgres(event), request_id=event.request_id, password=password
    )
    resource_id = resource_id_of(event)
    nonce, ciphertext = ctx.deps.cipher.encrypt(resource_id, password)
    await repository.save_credential(
        ctx.session,
        resource_id=resource_id,
        request_id=event.request_id,
        username=deployed.username,
        nonce=nonce,
        ciphertext=ciphertext,
    )
    state.state, state.server_id, state.resource_id = "deployed", event.server_id, resource_id
    state.configuration = event.configuration
    ctx.emit(
        ResourceDeployed(
            request_id=event.request_id, resource_id=resource_id, server_id=event.server_id
        )
    )
    ctx.emit(ResourceVerified(request_id=event.request_id, resource_id=resource_id))
    ctx.emit(
        ProvisioningCompleted(
            **_facts(event),
            resource_id=resource_id,
            server_id=event.server_id,
            outputs=deployed.outputs,
            credentials_ref=f"deployer:credentials/{resource_id}",
        )
    )


async def _remove(event: ResourceConfigured, ctx: Context) -> None:
    await ctx.deps.targets.remove(event.server_id, _postgres(event))
    resource_id = resource_id_of(event)
    await repository.forget_credential(ctx.session, resource_id)
    ctx.emit(
        ProvisioningCompleted(**_facts(event), resource_id=resource_id, server_id=event.server_id)
    )


def cancellation_failed(event: CancellationRequested, reason: str) -> CompensationFailed:
    return CompensationFailed(request_id=event.request_id, step="deploy", reason=reason)


@router.on(CancellationRequested, on_failure=cancellation_failed)
async def cancel(event: CancellationRequested, ctx: Context) -> None:
    """Stop the request before it deploys, or remove what it deployed."""
    state = await repository.lock_state(ctx.session, event.request_id)
    if state.state == "new":
        state.state = "cancelled"
    elif state.state == "deployed":
        assert state.server_id and state.resource_id and state.configuration
        configuration = PostgresConfiguration.model_validate(state.configuration)
        await ctx.deps.targets.remove(state.server_id, configuration, created_by=event.request_id)
        await repository.forget_credential(ctx.session, state.resource_id)
        state.state = "rolled_back"
        ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=state.server_id))


def compensation_failed(event: ProvisioningFailed, reason: str) -> CompensationFailed:
    return CompensationFailed(
        request_id=event.request_id,
        step="deploy",
        reason=reason,
        server_id=event.server_id,
        driver=event.driver,
        configuration=event.configuration,
    )


@router.on(ProvisioningFailed, on_failure=compensation_failed)
async def roll_back(event: ProvisioningFailed, ctx: Context) -> None:
    """Undo what a failed deployment of this request left in the target, then hand the
    rollback on to the configurator. A failed deprovision leaves the resource as it was."""
    if event.operation != "provision":
        return
    if event.configuration is not None and event.driver == "postgres":
        await ctx.deps.targets.remove(
            event.server_id,
            PostgresConfiguration.model_validate(event.configuration),
            created_by=event.request_id,
        )
    ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=event.server_id))


def _facts(event: ResourceConfigured) -> dict[str, object]:
    return event.model_dump(
        exclude={"type", "topic", "version", "server_id", "configuration", "resource_id"}
    )


def _postgres(event: ResourceConfigured) -> PostgresConfiguration:
    """The one driver so far; the next ones are chosen by `event.driver` here."""
    if event.driver != "postgres":
        raise PermanentError(f"the deployer has no {event.driver!r} driver yet")
    return PostgresConfiguration.model_validate(event.configuration)


def retry_failed(event: CompensationRetryRequested, reason: str) -> CompensationFailed:
    return CompensationFailed(request_id=event.request_id, step="deploy", reason=reason)


@router.on(CompensationFailed)
async def remember_what_is_left(event: CompensationFailed, ctx: Context) -> None:
    """Keep what a failed undo left, so that an operator's retry knows what to remove."""
    state = await repository.lock_state(ctx.session, event.request_id)
    state.state = "compensation_failed"
    if event.configuration is not None:
        state.server_id, state.configuration = event.server_id, event.configuration


@router.on(CompensationRetryRequested, on_failure=retry_failed)
async def retry_compensation(event: CompensationRetryRequested, ctx: Context) -> None:
    state = await repository.lock_state(ctx.session, event.request_id)
    if state.state != "compensation_failed":
        return
    if state.server_id and state.configuration:
        await ctx.deps.targets.remove(
            state.server_id,
            PostgresConfiguration.model_validate(state.configuration),
            created_by=event.request_id,
        )
    if state.resource_id is not None:
        await repository.forget_credential(ctx.session, state.resource_id)
    state.state = "rolled_back"
    ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=state.server_id or ""))
