"""One delivery attempt through the outbound guard, against real local sockets: what reaches the
subscriber, and what the delivery log is told when nothing does."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from events.outbound import AllowList, IPAddress, guarded_client
from request_api.webhooks import signing
from request_api.webhooks.delivery import DeliveryPolicy, Outcome, attempt, record
from request_api.webhooks.models import Activity, WebhookDelivery, WebhookSubscription

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = DeliveryPolicy(
    timeout_s=2.0, max_attempts=5, backoff_base_s=1.0, backoff_cap_s=10.0, batch_size=10
)
LOOPBACK = AllowList.parse("127.0.0.1/32")


@dataclass
class Subscriber:
    """A bare HTTP server on 127.0.0.1 answering `status` to every request it records."""

    status: int = 200
    paths: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        await reader.readexactly(length)
        self.paths.append(head.split(" ")[1])
        location = f"http://127.0.0.1:{self.port}/elsewhere"
        writer.write(
            f"HTTP/1.1 {self.status} X\r\nlocation: {location}\r\ncontent-length: 0\r\n"
            "connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    receiving = Subscriber()
    server = await asyncio.start_server(receiving.handle, "127.0.0.1", 0)
    receiving.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiving


@dataclass
class Names:
    """A resolver knowing only the names it is given (fake DNS)."""

    answers: dict[str, str]

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        return [ipaddress.ip_address(self.answers[host])]


def activity() -> Activity:
    return Activity(
        seq=7,
        id=uuid.uuid4(),
        tenant="engineering",
        type="request.completed",
        request_id=uuid.uuid4(),
        resource_id=None,
        data={"status": "completed"},
        txid=1,
        occurred_at=NOW,
    )


def subscription(url: str) -> WebhookSubscription:
    return WebhookSubscription(
        id=uuid.uuid4(),
        tenant="engineering",
        url=url,
        event_types=["*"],
        enabled=True,
        secret_nonce=b"",
        secret_sealed=b"",
        created_by="ops",
        created_at=NOW - timedelta(minutes=1),
    )


async def send(url: str, *, names: Names | None = None) -> Outcome:
    async with guarded_client(LOOPBACK, timeout_s=2.0, resolver=names) as client:
        return await attempt(client, activity(), subscription(url), signing.new_secret(), POLICY)


def logged(outcome: Outcome) -> str | None:
    delivery = WebhookDelivery(id=uuid.uuid4(), attempts=0, status="pending")
    record(delivery, outcome, POLICY, now=NOW)
    return delivery.last_error


async def test_a_delivery_reaches_an_allow_listed_subscriber(subscriber: Subscriber) -> None:
    outcome = await send(
        f"http://hooks.example:{subscriber.port}/in", names=Names({"hooks.example": "127.0.0.1"})
    )
    assert outcome.delivered and subscriber.paths == ["/in"]


async def test_an_unresolvable_host_is_not_sent_and_logged_as_a_refused_address(
    subscriber: Subscriber,
) -> None:
    outcome = await send(f"http://gone.example:{subscriber.port}/in", names=Names({}))
    assert not outcome.delivered and subscriber.paths == []
    assert logged(outcome) == "refused_address"


async def test_a_name_resolving_to_a_private_address_is_not_sent(subscriber: Subscriber) -> None:
    names = Names({"metadata.example": "169.254.169.254"})
    outcome = await send("http://metadata.example/latest/meta-data", names=names)
    assert logged(outcome) == "refused_address"


async def test_a_closed_port_is_logged_without_the_error_text_or_the_port() -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    error = logged(await send(f"http://127.0.0.1:{port}/in"))
    assert error == "connection_failed"
    assert "refused" not in error.lower() and str(port) not in error


async def test_a_redirect_is_not_followed_and_logged_as_its_status(
    subscriber: Subscriber,
) -> None:
    subscriber.status = 307
    outcome = await send(f"http://127.0.0.1:{subscriber.port}/in")
    assert outcome.status_code == 307 and logged(outcome) == "http_307"
    assert subscriber.paths == ["/in"]


async def test_an_error_answer_is_logged_as_its_status(subscriber: Subscriber) -> None:
    subscriber.status = 503
    assert logged(await send(f"http://127.0.0.1:{subscriber.port}/in")) == "http_503"
