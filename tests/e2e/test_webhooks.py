"""Webhook subscriptions end to end: signed CloudEvents, outages, redelivery, tenants apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, fetchval, key_for
from tests.e2e.subscriber import Subscriber
from tests.polling import eventually

pytestmark = pytest.mark.integration

JOURNEY = [
    "request.submitted",
    "request.validated",
    "request.allocated",
    "request.configured",
    "request.deployed",
    "request.verified",
    "request.completed",
]


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    receiver = Subscriber()
    await receiver.start()
    yield receiver
    await receiver.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def subscribe(api: httpx.AsyncClient, url: str, event_types: list[str]) -> dict[str, Any]:
    answer = await api.post("/v1/webhooks", json={"url": url, "event_types": event_types})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def deliveries(api: httpx.AsyncClient, subscription_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/v1/webhooks/{subscription_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def types_of(received: list[Any]) -> list[str]:
    """In the journal's order: deliveries are sent concurrently, so they may arrive in any."""
    return [r.event["type"] for r in sorted(received, key=lambda r: int(r.event["sequence"]))]


async def test_a_subscription_receives_signed_cloud_events(
    platform: Platform, subscriber: Subscriber
):
    subscription = await subscribe(platform.api, subscriber.url("all"), ["request.*"])
    secret = subscription["secret"]
    assert secret.startswith("whsec_")
    shown = (await platform.api.get(f"/v1/webhooks/{subscription['id']}")).json()
    assert "secret" not in shown and shown["event_types"] == ["request.*"]
    assert secret not in (await platform.api.get("/v1/webhooks")).text
    # At rest it is sealed: nothing in the subscription's row gives it away.
    row = await fetchval(
        platform.stack,
        "request_api",
        "SELECT row_to_json(s)::text FROM webhook_subscriptions s WHERE id = $1",
        uuid.UUID(subscription["id"]),
    )
    assert secret not in row and secret.removeprefix("whsec_") not in row

    request = await platform.completed("postgres_schema", name=unique("hooked"))

    async def all_arrived() -> bool:
        return len(subscriber.of("all", request["id"])) == len(JOURNEY)

    await eventually(all_arrived)
    received = sorted(subscriber.of("all", request["id"]), key=lambda r: int(r.event["sequence"]))
    assert types_of(received) == JOURNEY
    for delivery in received:
        event = delivery.verified(secret)
        assert delivery.headers["content-type"] == "application/cloudevents+json"
        assert delivery.headers["webhook-id"] == event["id"]
        assert event["specversion"] == "1.0" and event["source"] and event["time"]
        assert event["subject"] == request["id"]
        assert event["data"]["id"] == request["id"]
        assert event["data"]["status"] == event["type"].removeprefix("request.")
    assert received[-1].verified(secret)["data"]["resource_id"] == request["resource_id"]
    # Signed with this subscription's secret, and no other.
    with pytest.raises(Exception, match="signature"):
        received[0].verified("whsec_" + "A" * 44)

    log = await deliveries(platform.api, subscription["id"])
    mine = [d for d in log if d["event_id"] in {r.event["id"] for r in received}]
    assert len(mine) == len(JOURNEY)
    assert all(d["status"] == "succeeded" and d["last_status_code"] == 200 for d in mine), mine
    assert all(d["attempts"] == 1 and d["delivered_at"] for d in mine)


async def test_only_the_chosen_event_types_arrive(platform: Platform, subscriber: Subscriber):
    chosen = await subscribe(
        platform.api, subscriber.url("chosen"), ["request.completed", "resource.*"]
    )
    everything = await subscribe(platform.api, subscriber.url("everything"), ["*"])
    request = await platform.completed("postgres_schema", name=unique("chosen"))

    async def all_arrived() -> bool:
        chosen_ones = subscriber.of("chosen", request["id"])
        return len(subscriber.of("everything", request["id"])) == 8 and len(chosen_ones) == 2

    await eventually(all_arrived)
    assert types_of(subscriber.of("chosen", request["id"])) == [
        "resource.active",
        "request.completed",
    ]
    assert types_of(subscriber.of("everything", request["id"])) == [
        *JOURNEY[:-1],
        "resource.active",
        "request.completed",
    ]
    [resource] = [
        r.verified(chosen["secret"])["data"]
        for r in subscriber.of("chosen", request["id"])
        if r.event["type"] == "resource.active"
    ]
    assert resource["id"] == request["resource_id"] and resource["state"] == "active"
    assert "credentials_ref" not in resource and "server_id" not in resource
    assert subscriber.of("everything")[0].verified(everything["secret"])


async def test_a_subscriber_that_is_down_slows_nothing_and_gets_everything_later(
    platform: Platform, subscriber: Subscriber
):
    subscription = await subscribe(platform.api, subscriber.url("outage"), ["request.*"])
    await subscriber.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    request = await platform.completed("postgres_schema", name=unique("outage"))
    assert loop.time() - started < 20, "the pipeline waited for the subscriber"

    async def retrying() -> bool:
        log = await deliveries(platform.api, subscription["id"])
        return any(d["attempts"] >= 2 and d["status"] == "pending" for d in log)

    await eventually(retrying)
    waiting = await deliveries(platform.api, subscription["id"])
    assert all(d["status"] == "pending" for d in waiting), waiting
    assert all(d["next_attempt_at"] for d in waiting if d["attempts"])
    # A class of failure: not the socket's "Connection refused", nor the port it tried.
    tried = [d for d in waiting if d["attempts"]]
    assert {d["last_error"] for d in tried} == {"connection_failed"}, tried
    assert str(subscriber.port) not in str(tried)

    await subscriber.start()

    async def all_arrived() -> bool:
        return types_of(subscriber.of("outage", request["id"])) == JOURNEY

    await eventually(all_arrived)
    done = await deliveries(platform.api, subscription["id"])
    assert all(d["status"] == "succeeded" for d in done), done
    assert max(d["attempts"] for d in done) >= 2


async def test_a_host_that_does_not_resolve_is_not_called_and_logged_as_refused(
    platform: Platform,
):
    subscription = await subscribe(platform.api, "http://no-such-host.invalid/in", ["request.*"])
    await platform.submit("postgres_schema", name=unique("nowhere"))

    async def tried() -> list[dict[str, Any]]:
        return [d for d in await deliveries(platform.api, subscription["id"]) if d["attempts"]]

    [first, *_] = await eventually(tried)
    assert first["status"] == "pending" and first["last_status_code"] is None
    assert first["last_error"] == "refused_address", first
    await platform.api.delete(f"/v1/webhooks/{subscription['id']}")


async def test_a_failed_delivery_can_be_redelivered(platform: Platform, subscriber: Subscriber):
    subscriber.answers["broken"] = 500
    subscription = await subscribe(platform.api, subscriber.url("broken"), ["request.submitted"])
    request = await platform.submit("postgres_schema", name=unique("redeliver"))

    async def failed() -> list[dict[str, Any]]:
        return [
            d for d in await deliveries(platform.api, subscription["id"]) if d["status"] == "failed"
        ]

    [delivery] = await eventually(failed, timeout_s=40)
    assert delivery["attempts"] == 12 and delivery["last_status_code"] == 500
    assert delivery["next_attempt_at"] is None
    assert subscriber.of("broken") == []

    subscriber.answers["broken"] = 200
    path = f"/v1/webhooks/{subscription['id']}/deliveries/{delivery['id']}/redeliver"
    again = await platform.api.post(path)
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    assert (await platform.api.post(path)).status_code == 409  # on its way already
    await eventually(lambda: _arrived(subscriber, "broken", request["id"], "request.submitted"))
    [redelivered] = subscriber.of("broken", request["id"])
    assert redelivered.verified(subscription["secret"])["id"] == delivery["event_id"]
    [log] = await deliveries(platform.api, subscription["id"])
    assert log["status"] == "succeeded" and log["attempts"] == 1


async def test_another_tenant_sees_nothing_of_this_tenants_webhooks(
    platform: Platform, subscriber: Subscriber
):
    mine = await subscribe(platform.api, subscriber.url("mine"), ["*"])
    key = await key_for(platform.stack, name="other-admin", tenant="finance", roles=["admin"])
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as other:
        theirs = await subscribe(other, subscriber.url("theirs"), ["*"])
        request = await platform.completed("postgres_schema", name=unique("apart"))
        await eventually(lambda: _arrived(subscriber, "mine", request["id"], "request.completed"))
        [delivery, *_] = await deliveries(platform.api, mine["id"])
        base = f"/v1/webhooks/{mine['id']}"
        for method, path, body in [
            ("GET", base, None),
            ("PATCH", base, {"enabled": False}),
            ("DELETE", base, None),
            ("POST", f"{base}/rotate-secret", None),
            ("GET", f"{base}/deliveries", None),
            ("POST", f"{base}/deliveries/{delivery['id']}/redeliver", None),
        ]:
            answer = await other.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        listed = (await other.get("/v1/webhooks")).json()["items"]
        assert [s["id"] for s in listed] == [theirs["id"]]
        assert await deliveries(other, theirs["id"]) == []
    assert subscriber.of("theirs") == []
    assert (await platform.api.get(base)).json()["enabled"] is True


async def test_subscriptions_are_checked_changed_rotated_and_deleted(
    platform: Platform, subscriber: Subscriber
):
    for body, field in [
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, "url"),
        ({"url": subscriber.url("x"), "event_types": ["request.finished"]}, "event_types"),
        ({"url": "http://user:pw@example.com/", "event_types": ["*"]}, "url"),
        # The stack allows 127.0.0.1 (its subscribers), no other private address.
        ({"url": "http://127.0.0.2:9000/", "event_types": ["*"]}, "url"),
        ({"url": "http://10.0.0.1/", "event_types": ["*"]}, "url"),
    ]:
        answer = await platform.api.post("/v1/webhooks", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    requester = await key_for(
        platform.stack, name="hook-req", tenant="default", roles=["requester"]
    )
    refused = await platform.api.get(
        "/v1/webhooks", headers={"Authorization": f"Bearer {requester}"}
    )
    assert refused.status_code == 403

    subscription = await subscribe(platform.api, subscriber.url("changing"), ["request.*"])
    base = f"/v1/webhooks/{subscription['id']}"
    changed = await platform.api.patch(
        base, json={"event_types": ["request.completed"], "description": "CI"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["request.completed"]
    assert changed.json()["description"] == "CI" and "secret" not in changed.json()
    rotated = (await platform.api.post(f"{base}/rotate-secret")).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != subscription["secret"]

    request = await platform.completed("postgres_schema", name=unique("rotated"))
    await eventually(lambda: _arrived(subscriber, "changing", request["id"], "request.completed"))
    [only] = subscriber.of("changing", request["id"])
    assert only.verified(rotated["secret"])["type"] == "request.completed"

    assert (await platform.api.delete(base)).status_code == 204
    assert (await platform.api.get(base)).status_code == 404


async def _arrived(subscriber: Subscriber, path: str, subject: str, event_type: str) -> bool:
    return event_type in types_of(subscriber.of(path, subject))


async def test_the_retention_purge_keeps_what_is_still_owed(
    platform: Platform, subscriber: Subscriber
):
    """Run in a transaction that is rolled back, with a cutoff in the future: everything
    finished goes, a delivery still pending keeps its journal row."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from request_api.webhooks import repository
    from request_api.webhooks.models import Activity, WebhookDelivery

    subscriber.answers["purge"] = 500
    subscription = await subscribe(platform.api, subscriber.url("purge"), ["request.*"])
    await platform.completed("postgres_schema", name=unique("purge"))
    await eventually(lambda: deliveries(platform.api, subscription["id"]))
    engine = create_async_engine(platform.stack.database_url("request_api"))
    try:
        # One snapshot for the whole check: the delivery loop may fail a pending delivery of
        # another subscription between the purge and the read that follows it.
        repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
        async with repeatable.connect() as connection, connection.begin() as transaction:
            session = AsyncSession(bind=connection)
            pending = await session.scalar(
                select(func.count()).where(WebhookDelivery.status == "pending")
            )
            assert pending
            await repository.purge_before(session, datetime.now(UTC) + timedelta(days=1))
            left = (await session.scalars(select(WebhookDelivery.status))).all()
            assert set(left) == {"pending"}
            kept = await session.scalar(select(func.count()).select_from(Activity))
            owed = await session.scalar(
                select(func.count(func.distinct(WebhookDelivery.activity_seq)))
            )
            # What is owed stays (plus rows the fan-out has not reached yet).
            assert kept is not None and owed is not None
            assert kept >= owed > 0
            await transaction.rollback()
    finally:
        await engine.dispose()
        await platform.api.delete(f"/v1/webhooks/{subscription['id']}")
