"""Reactions of the deployer to events: create and verify, change, disable or remove on
deprovision, undo a failed deployment, and re-verify on demand. Every target call goes
through the driver the configuration names (deployer/drivers)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog import Catalog
from deployer import repository
from deployer.drivers import Driver, Drivers, Placement, TargetUnavailable
from deployer.models import ManagedResource
from events import HandlerContext, PermanentError, Router
from events.contracts.configuration import ResourceConfigured
from events.contracts.deployment import (
    CompensationFailed,
    DeploymentRolledBack,
    DriftDetected,
    DriftResolved,
    Leftover,
    ProvisioningCompleted,
    ProvisioningFailed,
    ResourceDeployed,
    ResourceVerified,
)
from events.contracts.requests import (
    CancellationRequested,
    CompensationRetryRequested,
    VerificationRequested,
)
from events.envelope import Event
from events.errors import InjectedFault
from events.sealing import SecretCipher

router = Router()

RESOURCE_IDS = uuid.UUID("0d9b3c58-2f6e-4a53-9f0e-3b1f6f1d2a77")


@dataclass(frozen=True)
class Deps:
    drivers: Drivers
    cipher: SecretCipher
    catalog: Catalog
    # Chaos testing: a request whose parameters contain this fails after the target changed.
    verify_fault_marker: str | None = None
    retention_cap_s: float | None = None


Context = HandlerContext[Deps]


def resource_id_of(event: ResourceConfigured) -> uuid.UUID:
    """Assigned at submission; events from before that derive it from the request."""
    return event.resource_id or uuid.uuid5(RESOURCE_IDS, str(event.request_id))


def leftover_of(event: ResourceConfigured) -> Leftover:
    return Leftover(
        driver=event.driver,
        server_id=event.server_id,
        configuration=event.configuration,
        resource_id=resource_id_of(event),
        tenant=event.tenant,
        owner=event.owner,
    )


def placement_of(leftover: Leftover, request_id: uuid.UUID) -> Placement:
    return Placement(
        server_id=leftover.server_id,
        request_id=request_id,
        resource_id=leftover.resource_id,
        tenant=leftover.tenant,
        owner=leftover.owner,
    )


def provisioning_failed(event: ResourceConfigured, reason: str) -> ProvisioningFailed:
    return ProvisioningFailed(
        request_id=event.request_id,
        catalog_item=event.catalog_item,
        server_id=event.server_id,
        reason=reason,
        operation=event.operation,
        code="target_failed",
        leftover=leftover_of(event) if event.operation == "provision" else None,
    )


@router.on(ResourceConfigured, on_failure=provisioning_failed)
async def deploy(event: ResourceConfigured, ctx: Context) -> None:
    if event.operation == "deprovision":
        await _deprovision(event, ctx)
        return
    if event.operation == "modify":
        await _modify(event, ctx)
        return
    state = await repository.lock_state(ctx.session, event.request_id)
    if state.state == "cancelled":
        # Cancelled before anything was created: the rollback starts here, with nothing to do.
        state.state = "rolled_back"
        ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=event.server_id))
        return
    leftover = leftover_of(event)
    driver = ctx.deps.drivers.get(event.driver, event.server_id)
    placement = placement_of(leftover, event.request_id)
    secret = _new_secret() if driver.needs_secret else None
    deployed = await driver.apply(placement, event.configuration, secret)
    _maybe_fail_before_verify(event, ctx)
    await _verify_or_retry(driver, placement, event.configuration, secret)
    resource_id = leftover.resource_id
    if secret is not None:
        await _keep_secret(
            ctx, resource_id, event.request_id, deployed.username, secret, tenant=leftover.tenant
        )
    state.state, state.resource_id = "deployed", resource_id
    state.leftover = leftover.model_dump(mode="json")
    await repository.manage(
        ctx.session,
        ManagedResource(
            resource_id=resource_id,
            request_id=event.request_id,
            catalog_item=event.catalog_item,
            driver=event.driver,
            server_id=event.server_id,
            tenant=event.tenant,
            owner=event.owner,
            requester=event.requester,
            configuration=event.configuration,
            status="active",
            drift=[],
        ),
    )
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
            credentials_ref=_credentials_ref(resource_id) if secret else None,
        )
    )


async def _modify(event: ResourceConfigured, ctx: Context) -> None:
    """Bring the resource to its new configuration (a change, a rotation, a remediation).
    A modify that fails is not undone: the resource stays active, the request fails."""
    resource = await _active_resource(ctx, event.resource_id)
    driver = ctx.deps.drivers.get(resource.driver, resource.server_id)
    placement = placement_of_managed(resource)
    recreated = any(difference.startswith("missing") for difference in resource.drift)
    # A resource recreated after it vanished needs a secret again: the old one is gone with it.
    wants_secret = event.rotate_credentials or recreated
    secret = _new_secret() if driver.needs_secret and wants_secret else None
    deployed = await driver.apply(placement, event.configuration, secret)
    await _verify_or_retry(driver, placement, event.configuration, secret)
    if secret is not None:
        await _keep_secret(
            ctx,
            resource.resource_id,
            event.request_id,
            deployed.username,
            secret,
            tenant=resource.tenant,
        )
    resource.configuration = event.configuration
    if resource.drift:
        resource.drift = []
        ctx.emit(DriftResolved(request_id=resource.request_id, resource_id=resource.resource_id))
    resource.checked_at = datetime.now(UTC)
    ctx.emit(
        ProvisioningCompleted(
            **_facts(event),
            resource_id=resource.resource_id,
            server_id=resource.server_id,
            outputs=deployed.outputs,
            credentials_ref=_credentials_ref(resource.resource_id) if secret else None,
        )
    )


async def _deprovision(event: ResourceConfigured, ctx: Context) -> None:
    """Take the resource away from its users: disabled and kept for the catalog's retention
    period (deleted later by the upkeep), or removed at once."""
    resource = await _active_resource(ctx, event.resource_id)
    driver = ctx.deps.drivers.get(resource.driver, resource.server_id)
    placement = placement_of_managed(resource)
    retention = _retention_of(ctx, resource.catalog_item)
    if retention > timedelta(0):
        await driver.disable(placement, resource.configuration)
        resource.status, resource.delete_after = "disabled", datetime.now(UTC) + retention
    else:
        await driver.remove(placement, resource.configuration)
        resource.status = "removed"
    await repository.forget_credential(ctx.session, resource.resource_id)
    ctx.emit(
        ProvisioningCompleted(
            **_facts(event), resource_id=resource.resource_id, server_id=resource.server_id
        )
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
        assert state.leftover is not None
        await _remove_leftover(ctx, Leftover.model_validate(state.leftover), event.request_id)
        state.state = "rolled_back"
        ctx.emit(
            DeploymentRolledBack(
                request_id=event.request_id, server_id=str(state.leftover["server_id"])
            )
        )


def compensation_failed(event: ProvisioningFailed, reason: str) -> CompensationFailed:
    return CompensationFailed(
        request_id=event.request_id,
        step="deploy",
        reason=reason,
        server_id=event.server_id,
        leftover=event.leftover,
    )


@router.on(ProvisioningFailed, on_failure=compensation_failed)
async def roll_back(event: ProvisioningFailed, ctx: Context) -> None:
    """Undo what a failed deployment of this request left in the target, then hand the
    rollback on to the configurator. A failed modify or deprovision leaves the resource."""
    if event.operation != "provision":
        return
    if event.leftover is not None:
        await _remove_leftover(ctx, event.leftover, event.request_id)
    ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=event.server_id))


@router.on(CompensationFailed)
async def remember_what_is_left(event: CompensationFailed, ctx: Context) -> None:
    """Keep what a failed undo left, so that an operator's retry knows what to remove."""
    state = await repository.lock_state(ctx.session, event.request_id)
    state.state = "compensation_failed"
    if event.leftover is not None:
        state.leftover = event.leftover.model_dump(mode="json")
        state.resource_id = event.leftover.resource_id


def retry_failed(event: CompensationRetryRequested, reason: str) -> CompensationFailed:
    return CompensationFailed(request_id=event.request_id, step="deploy", reason=reason)


@router.on(CompensationRetryRequested, on_failure=retry_failed)
async def retry_compensation(event: CompensationRetryRequested, ctx: Context) -> None:
    state = await repository.lock_state(ctx.session, event.request_id)
    if state.state != "compensation_failed":
        return
    server_id = ""
    if state.leftover is not None:
        leftover = Leftover.model_validate(state.leftover)
        await _remove_leftover(ctx, leftover, event.request_id)
        server_id = leftover.server_id
    state.state = "rolled_back"
    ctx.emit(DeploymentRolledBack(request_id=event.request_id, server_id=server_id))


@router.on(VerificationRequested)
async def verify_on_demand(event: VerificationRequested, ctx: Context) -> None:
    """Check one resource now; the answer is a `resource.verified` or a drift event."""
    resource = await repository.lock_managed(ctx.session, event.resource_id)
    if resource is None or resource.status != "active":
        return
    driver = ctx.deps.drivers.get(resource.driver, resource.server_id)
    differences = await driver.verify(placement_of_managed(resource), resource.configuration, None)
    for drift_event in record_check(resource, differences):
        ctx.emit(drift_event)
    if not differences:
        ctx.emit(ResourceVerified(request_id=resource.request_id, resource_id=event.resource_id))


def record_check(resource: ManagedResource, differences: list[str]) -> list[Event]:
    """Remember a check's outcome; announce a drift when it starts or changes, and its end."""
    resource.checked_at = datetime.now(UTC)
    if differences == resource.drift:
        return []
    resource.drift = differences
    if not differences:
        return [DriftResolved(request_id=resource.request_id, resource_id=resource.resource_id)]
    return [
        DriftDetected(
            request_id=resource.request_id,
            resource_id=resource.resource_id,
            differences=differences,
        )
    ]


async def _remove_leftover(ctx: Context, leftover: Leftover, request_id: uuid.UUID) -> None:
    driver = ctx.deps.drivers.get(leftover.driver, leftover.server_id)
    await driver.remove(placement_of(leftover, request_id), leftover.configuration)
    await repository.forget_credential(ctx.session, leftover.resource_id)
    resource = await repository.lock_managed(ctx.session, leftover.resource_id)
    if resource is not None:
        resource.status = "removed"


async def _active_resource(ctx: Context, resource_id: uuid.UUID | None) -> ManagedResource:
    resource = await repository.lock_managed(ctx.session, resource_id) if resource_id else None
    if resource is None or resource.status != "active":
        raise PermanentError("the deployer has no active resource with this id")
    return resource


def placement_of_managed(resource: ManagedResource) -> Placement:
    return Placement(
        server_id=resource.server_id,
        request_id=resource.request_id,
        resource_id=resource.resource_id,
        tenant=resource.tenant,
        owner=resource.owner,
    )


async def _verify_or_retry(
    driver: Driver, placement: Placement, configuration: dict[str, Any], secret: str | None
) -> None:
    """A resource that does not check out is retried (apply converges), then rolled back."""
    differences = await driver.verify(placement, configuration, secret)
    if differences:
        raise TargetUnavailable("verification found: " + "; ".join(differences))


def _maybe_fail_before_verify(event: ResourceConfigured, ctx: Context) -> None:
    """Chaos testing: fail after the target changed, which only a rollback can undo."""
    marker = ctx.deps.verify_fault_marker
    if marker and marker in str(event.parameters.get("name", "")):
        raise InjectedFault("fault injected at deployer.verify")


def _retention_of(ctx: Context, catalog_item: str) -> timedelta:
    item = ctx.deps.catalog.get(catalog_item)
    seconds = item.retention_days * 86_400 if item else 0.0
    if ctx.deps.retention_cap_s is not None:
        seconds = min(seconds, ctx.deps.retention_cap_s)
    return timedelta(seconds=seconds)


def _new_secret() -> str:
    return secrets.token_urlsafe(24)


async def _keep_secret(
    ctx: Context,
    resource_id: uuid.UUID,
    request_id: uuid.UUID,
    username: str | None,
    secret: str,
    *,
    tenant: str,
) -> None:
    """Encrypted at rest under a key outside the database; revealed once to the requester."""
    nonce, ciphertext = ctx.deps.cipher.encrypt(resource_id, secret)
    await repository.save_credential(
        ctx.session,
        resource_id=resource_id,
        request_id=request_id,
        tenant=tenant,
        username=username or "",
        nonce=nonce,
        ciphertext=ciphertext,
    )


def _credentials_ref(resource_id: uuid.UUID) -> str:
    return f"deployer:credentials/{resource_id}"


def _facts(event: ResourceConfigured) -> dict[str, object]:
    return event.model_dump(
        exclude={"type", "topic", "version", "server_id", "configuration", "resource_id"}
    )
