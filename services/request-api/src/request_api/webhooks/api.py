"""Routes for webhook subscriptions and their delivery log."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from apikeys import Caller
from apikeys.authorization import Action, documented, require
from events import ServiceRuntime
from events.http import ProblemError
from events.outbound import AllowList
from events.sealing import SecretCipher
from request_api.webhooks import repository, signing
from request_api.webhooks.schemas import (
    Deliveries,
    Delivery,
    NewSubscription,
    Subscription,
    SubscriptionChange,
    Subscriptions,
    SubscriptionWithSecret,
    check,
)

NOT_FOUND = "Webhook subscription not found"
MANAGED = documented(Action.MANAGE_WEBHOOKS)


def create_router(
    runtime: ServiceRuntime,
    authenticate: Callable[[Request], Awaitable[Caller]],
    *,
    cipher: SecretCipher,
    allow_list: AllowList,
) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

    async def admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        # A subscription hears about every request of the tenant: an admin's decision.
        require(caller, Action.MANAGE_WEBHOOKS)
        return caller

    AdminDep = Annotated[Caller, Depends(admin)]

    @router.post("", status_code=201, response_model=SubscriptionWithSecret)
    async def create_subscription(
        body: NewSubscription, caller: AdminDep, response: Response
    ) -> dict[str, Any]:
        """Subscribes `url` to the chosen event types. The signing secret is in this answer
        and never again (rotate it to get a new one)."""
        check(body.url, body.event_types, allow_list=allow_list)
        secret = signing.new_secret()
        subscription_id = uuid.uuid4()
        nonce, sealed = cipher.encrypt(subscription_id, secret)
        async with runtime.tenant_transaction(caller.tenant) as session:
            subscription = await repository.add_subscription(
                session,
                subscription_id,
                tenant=caller.tenant,
                url=body.url,
                event_types=sorted(set(body.event_types)),
                description=body.description,
                enabled=True,
                secret_nonce=nonce,
                secret_sealed=sealed,
                created_by=caller.name,
            )
            answer = {**subscription.public(), "secret": secret}
        response.headers["Location"] = f"/v1/webhooks/{subscription.id}"
        # It holds the secret: no cache keeps it, nor the idempotency record.
        response.headers["Cache-Control"] = "no-store"
        return answer

    @router.get("", response_model=Subscriptions)
    async def list_subscriptions(caller: AdminDep) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            found = await repository.list_subscriptions(session, tenant=caller.tenant)
            return {"items": [subscription.public() for subscription in found]}

    @router.get("/{subscription_id}", response_model=Subscription, openapi_extra=MANAGED)
    async def get_subscription(subscription_id: uuid.UUID, caller: AdminDep) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            subscription = await repository.get_subscription(
                session, subscription_id, tenant=caller.tenant
            )
            if subscription is None:
                raise ProblemError(404, NOT_FOUND)
            return subscription.public()

    @router.patch("/{subscription_id}", response_model=Subscription, openapi_extra=MANAGED)
    async def change_subscription(
        subscription_id: uuid.UUID, body: SubscriptionChange, caller: AdminDep
    ) -> dict[str, Any]:
        check(body.url, body.event_types, allow_list=allow_list)
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "event_types" in changes:
            changes["event_types"] = sorted(set(changes["event_types"]))
        async with runtime.tenant_transaction(caller.tenant) as session:
            subscription = await repository.get_subscription(
                session, subscription_id, tenant=caller.tenant
            )
            if subscription is None:
                raise ProblemError(404, NOT_FOUND)
            for field, value in changes.items():
                setattr(subscription, field, value)
            await session.flush()
            await session.refresh(subscription)
            return subscription.public()

    @router.delete("/{subscription_id}", status_code=204, openapi_extra=MANAGED)
    async def delete_subscription(subscription_id: uuid.UUID, caller: AdminDep) -> Response:
        async with runtime.tenant_transaction(caller.tenant) as session:
            if not await repository.delete_subscription(
                session, subscription_id, tenant=caller.tenant
            ):
                raise ProblemError(404, NOT_FOUND)
        return Response(status_code=204)

    @router.post(
        "/{subscription_id}/rotate-secret",
        response_model=SubscriptionWithSecret,
        openapi_extra=MANAGED,
    )
    async def rotate_secret(
        subscription_id: uuid.UUID, caller: AdminDep, response: Response
    ) -> dict[str, Any]:
        """A new signing secret, shown once; the old one stops signing at once."""
        response.headers["Cache-Control"] = "no-store"
        secret = signing.new_secret()
        async with runtime.tenant_transaction(caller.tenant) as session:
            subscription = await repository.get_subscription(
                session, subscription_id, tenant=caller.tenant
            )
            if subscription is None:
                raise ProblemError(404, NOT_FOUND)
            subscription.secret_nonce, subscription.secret_sealed = cipher.encrypt(
                subscription.id, secret
            )
            await session.flush()
            await session.refresh(subscription)
            return {**subscription.public(), "secret": secret}

    @router.get("/{subscription_id}/deliveries", response_model=Deliveries, openapi_extra=MANAGED)
    async def list_deliveries(
        subscription_id: uuid.UUID,
        caller: AdminDep,
        status: Literal["pending", "succeeded", "failed"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """The delivery log, newest event first."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            if await repository.get_subscription(session, subscription_id, tenant=caller.tenant):
                found = await repository.deliveries_of(
                    session, subscription_id, tenant=caller.tenant, status=status, limit=limit
                )
                return {"items": [delivery.public(event_id) for delivery, event_id in found]}
        raise ProblemError(404, NOT_FOUND)

    @router.post(
        "/{subscription_id}/deliveries/{delivery_id}/redeliver",
        status_code=202,
        response_model=Delivery,
        openapi_extra=MANAGED,
    )
    async def redeliver(
        subscription_id: uuid.UUID, delivery_id: uuid.UUID, caller: AdminDep
    ) -> dict[str, Any]:
        """Sends the event again, with a fresh round of attempts (same `webhook-id`, so a
        subscriber that had it already can tell)."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            found = await repository.get_delivery(
                session, subscription_id, delivery_id, tenant=caller.tenant
            )
            if found is None:
                raise ProblemError(404, "Delivery not found")
            delivery, event_id = found
            if delivery.status == "pending":
                raise ProblemError(409, "Delivery pending", "It is being delivered already.")
            delivery.status, delivery.attempts = "pending", 0
            delivery.next_attempt_at = datetime.now(UTC)
            return delivery.public(event_id)

    return router
