"""The periodic work that tells subscribers: fan journal rows out into deliveries, then send
the deliveries that are due, concurrently, each attempt bounded by a timeout.

It runs in the request-api beside the API, never in the consume loop, so a subscriber that is
down or slow never holds up the pipeline; at worst it delays the next round of deliveries by
one attempt's timeout (a round sends its batch at once and waits for all of it). Claimed rows
stay locked (SKIP LOCKED) while they are sent, so replicas never send one twice at once; if a
replica dies mid-send its transaction rolls back and the delivery is sent again: receivers
dedupe on `webhook-id` (the event's id).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from events import outbound
from events.sealing import SecretCipher
from request_api.settings import Settings
from request_api.webhooks import cloudevents, event_types, repository, rules, signing
from request_api.webhooks.models import Activity, WebhookDelivery, WebhookSubscription

FAN_OUT_BATCHES_PER_ROUND = 10


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    batch_size: int


def policy_of(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_cap_s=settings.webhook_backoff_cap_s,
        batch_size=settings.webhook_batch_size,
    )


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    # A class of error (`connection_failed`, `http_503`: events.outbound), never an error's
    # text, which would tell a subscriber's owner what listens on our network.
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def owed(activity: Activity, subscriptions: list[WebhookSubscription]) -> list[dict[str, Any]]:
    """The deliveries one journal row needs: subscriptions of its tenant that chose its type
    and existed when it happened (a new subscription does not replay the past)."""
    return [
        {
            "id": uuid.uuid4(),
            "tenant": activity.tenant,
            "subscription_id": subscription.id,
            "activity_seq": activity.seq,
            "event_type": activity.type,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": activity.occurred_at,
        }
        for subscription in subscriptions
        if subscription.tenant == activity.tenant
        and subscription.created_at <= activity.occurred_at
        and event_types.matches(subscription.event_types, activity.type)
    ]


async def fan_out(session: AsyncSession, *, batch_size: int) -> None:
    """Turn the journal past the cursor into deliveries: a few batches a round, so that a
    burst (a benchmark, a mass offboarding) is caught up with quickly."""
    cursor = await repository.claim_fan_out_cursor(session)
    if cursor is None:
        return  # another replica is at it
    for _ in range(FAN_OUT_BATCHES_PER_ROUND):
        journal = await repository.journal_after(session, cursor, limit=batch_size)
        if not journal:
            return
        subscriptions = await repository.enabled_subscriptions(
            session, sorted({a.tenant for a in journal})
        )
        owed_now = [delivery for activity in journal for delivery in owed(activity, subscriptions)]
        await repository.add_deliveries(session, owed_now)
        cursor.last_txid, cursor.last_seq = journal[-1].txid, journal[-1].seq
        if len(journal) < batch_size:
            return


async def send_due(
    session: AsyncSession, client: httpx.AsyncClient, cipher: SecretCipher, policy: DeliveryPolicy
) -> None:
    due = await repository.due_deliveries(session, now=datetime.now(UTC), limit=policy.batch_size)
    outcomes = await asyncio.gather(
        *(
            attempt(client, activity, subscription, _secret_of(cipher, subscription), policy)
            for _, activity, subscription in due
        )
    )
    finished_at = datetime.now(UTC)
    for (delivery, _, _), outcome in zip(due, outcomes, strict=True):
        record(delivery, outcome, policy, now=finished_at)


async def tick(
    session: AsyncSession,
    *,
    client: httpx.AsyncClient,
    cipher: SecretCipher,
    policy: DeliveryPolicy,
) -> None:
    await fan_out(session, batch_size=policy.batch_size)
    await send_due(session, client, cipher, policy)


def _secret_of(cipher: SecretCipher, subscription: WebhookSubscription) -> str:
    return cipher.decrypt(subscription.id, subscription.secret_nonce, subscription.secret_sealed)


async def attempt(
    client: httpx.AsyncClient,
    activity: Activity,
    subscription: WebhookSubscription,
    secret: str,
    policy: DeliveryPolicy,
) -> Outcome:
    body = cloudevents.encode(cloudevents.cloud_event(activity))
    message_id = str(activity.id)
    sent_at = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "content-type": cloudevents.CONTENT_TYPE,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signing.sign(secret, message_id, sent_at, body),
    }
    try:
        async with asyncio.timeout(policy.timeout_s):
            # The client is events.outbound's: it checks the address it connects to.
            response = await client.post(subscription.url, content=body, headers=headers)
    except (TimeoutError, httpx.HTTPError) as error:
        return Outcome(error=outbound.error_class(error))
    if 200 <= response.status_code < 300:
        return Outcome(status_code=response.status_code)
    return Outcome(
        status_code=response.status_code, error=outbound.status_class(response.status_code)
    )


def record(
    delivery: WebhookDelivery, outcome: Outcome, policy: DeliveryPolicy, *, now: datetime
) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
    elif rules.gives_up(delivery.attempts, max_attempts=policy.max_attempts):
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delay_s = rules.retry_delay_s(
            delivery.attempts,
            base_s=policy.backoff_base_s,
            cap_s=policy.backoff_cap_s,
            jitter=random.random(),
        )
        delivery.next_attempt_at = now + timedelta(seconds=delay_s)


async def purge(session: AsyncSession, *, keep: timedelta) -> None:
    await repository.purge_before(session, datetime.now(UTC) - keep)
