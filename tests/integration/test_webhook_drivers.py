"""The licence and MDM drivers against the real receiver devstack starts: signatures, retries
applied once, drift, faults, outages and restarts."""

from __future__ import annotations

import asyncio
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from tests.integration.isolated import isolated_config

from deployer.drivers.base import Placement, TargetConflict, TargetUnavailable
from deployer.drivers.webhooks import LicenceDriver, MdmDriver, WebhookTarget
from devstack import receiver
from devstack.config import StackConfig
from devstack.receiver.signing import SYSTEMS
from events import PermanentError
from events.outbound import AllowList

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    root = tmp_path_factory.mktemp("receiver")
    config = isolated_config(root, "receiver_port")
    try:
        receiver.start(config)
        yield config
    finally:
        receiver.stop(config)


@pytest.fixture
async def control(config: StackConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The receiver's unsigned test routes, and raw (signed by the test) calls."""
    async with httpx.AsyncClient(base_url=receiver.url(config), timeout=5.0) as client:
        yield client
        await client.delete("/_test/faults")


def target(config: StackConfig, system: str) -> WebhookTarget:
    return WebhookTarget(
        url=f"{receiver.url(config)}/{system}", secret_file=receiver.secret_file(config, system)
    )


def allowed(config: StackConfig) -> AllowList:
    """The receiver, as the stack allows it: its own address and port, nothing else local."""
    return AllowList.parse(receiver.endpoint(config))


@pytest.fixture
async def licences(config: StackConfig) -> AsyncIterator[LicenceDriver]:
    driver = LicenceDriver(
        target(config, "licence-vendor"), timeout_s=TIMEOUT_S, allow_list=allowed(config)
    )
    yield driver
    await driver.close()


@pytest.fixture
async def mdm(config: StackConfig) -> AsyncIterator[MdmDriver]:
    driver = MdmDriver(target(config, "mdm"), timeout_s=TIMEOUT_S, allow_list=allowed(config))
    yield driver
    await driver.close()


def placement(system: str = "licence-vendor") -> Placement:
    return Placement(
        server_id=system,
        request_id=uuid.uuid4(),
        resource_id=uuid.uuid4(),
        tenant="engineering",
        owner="alice",
    )


def seat(n: int | None = None) -> dict[str, str]:
    number = n if n is not None else uuid.uuid4().int % 10**6
    return {"product": "figma", "seat": f"figma-seat-{number:06d}", "assignee": "alice"}


def laptop() -> dict[str, str]:
    serial = f"C02TEST{uuid.uuid4().hex[:6].upper()}"
    return {"kind": "laptop", "model": "mbp-14", "serial": serial, "assignee": "alice"}


async def signed(
    client: httpx.AsyncClient,
    config: StackConfig,
    system: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    webhook_id: str | None = None,
    sent_at: datetime | None = None,
    secret: str | None = None,
) -> httpx.Response:
    """A call as the test makes it, behind the drivers' back."""
    data = json.dumps(body) if body is not None else ""
    webhook_id = webhook_id or f"msg_test_{uuid.uuid4().hex}"
    sent_at = sent_at or datetime.now(UTC)
    key = secret or receiver.secret_file(config, system).read_text().strip()
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(key).sign(webhook_id, sent_at, data),
        "content-type": "application/json",
    }
    return await client.request(method, f"/{system}{path}", content=data, headers=headers)


async def deliveries(client: httpx.AsyncClient, about: str) -> list[dict[str, Any]]:
    """Every delivery whose path or body names `about` (an assignment id, a serial)."""
    found = (await client.get("/_test/deliveries")).json()
    return [d for d in found if about in d["path"] or about in json.dumps(d["body"])]


def events_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in found if d["method"] == "POST"]


async def test_secrets_are_generated_once_private_and_prefixed(config: StackConfig) -> None:
    for system in SYSTEMS:
        path = receiver.secret_file(config, system)
        first = path.read_text()
        assert first.startswith("whsec_") and len(first.strip()) > 40
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert receiver.secret_file(config, system).read_text() == first
    pid = receiver.running_pid(config)
    assert pid is not None
    receiver.start(config)  # idempotent: the running one is kept
    assert receiver.running_pid(config) == pid


async def test_licence_is_assigned_verified_and_released(
    licences: LicenceDriver, control: httpx.AsyncClient
) -> None:
    where, wanted = placement(), seat()
    deployed = await licences.apply(where, wanted, None)
    assert deployed.outputs == {"assignment_id": str(where.resource_id), **wanted}
    assert deployed.username is None and licences.needs_secret is False
    assert await licences.verify(where, wanted, None) == []
    await licences.apply(where, wanted, None)  # a redelivery: nothing new to send

    await licences.remove(where, wanted)
    assert await licences.verify(where, wanted, None) == ["missing"]
    await licences.remove(where, wanted)  # gone already: fine
    await licences.disable(where, wanted)

    found = await deliveries(control, str(where.resource_id))
    assert {d["signature"] for d in found} == {"valid"}
    assert {(d["method"], json.dumps(d["body"])) for d in found if d["type"] is None} == {
        ("GET", "{}")
    }
    events = events_of(found)
    assert [(d["type"], d["verdict"]) for d in events] == [
        ("licence.assigned", "applied"),
        ("licence.released", "applied"),
    ]
    assigned = events[0]["body"]
    assert assigned == {
        "type": "licence.assigned",
        "assignment_id": str(where.resource_id),
        "request_id": str(where.request_id),
        **wanted,
    }
    assert events[0]["webhook_id"].startswith("msg_")


async def test_a_delivery_sent_twice_is_applied_once(
    licences: LicenceDriver, control: httpx.AsyncClient
) -> None:
    where, wanted = placement(), seat()
    # The vendor is slow on the event: the first attempt times out, but lands later.
    fault = {"system": "licence-vendor", "method": "POST", "delay_s": 1.5, "count": 1}
    assert (await control.post("/_test/faults", json=fault)).status_code == 200
    with pytest.raises(TargetUnavailable):
        await licences.apply(where, wanted, None)
    await licences.apply(where, wanted, None)  # the consumer's retry

    deadline = time.monotonic() + 5
    while len(events := events_of(await deliveries(control, str(where.resource_id)))) < 2:
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.1)
    assert len({d["webhook_id"] for d in events}) == 1
    assert sorted(d["verdict"] for d in events) == ["applied", "replayed"]
    assert await licences.verify(where, wanted, None) == []


async def test_a_seat_taken_by_another_assignment_is_a_conflict(licences: LicenceDriver) -> None:
    wanted = seat()
    first, second = placement(), placement()
    await licences.apply(first, wanted, None)
    with pytest.raises(TargetConflict, match="409"):
        await licences.apply(second, wanted | {"assignee": "bob"}, None)
    await licences.remove(second, wanted)  # not ours: left alone
    assert await licences.verify(first, wanted, None) == []


async def test_device_is_enrolled_verified_retired_and_wiped(
    config: StackConfig, mdm: MdmDriver, control: httpx.AsyncClient
) -> None:
    where, wanted = placement("mdm"), laptop()
    deployed = await mdm.apply(where, wanted, None)
    assert deployed.outputs == wanted
    assert await mdm.verify(where, wanted, None) == []

    stranger = placement("mdm")
    with pytest.raises(TargetConflict, match="enrolled by another request"):
        await mdm.apply(stranger, wanted, None)
    await mdm.remove(stranger, wanted)  # not enrolled by that request: nothing happens
    assert await mdm.verify(where, wanted, None) == []

    await mdm.disable(where, wanted)
    await mdm.remove(where, wanted)
    device = await signed(control, config, "mdm", "GET", f"/devices/{wanted['serial']}")
    assert device.status_code == 200
    assert device.json() | {"revision": None} == {
        **wanted,
        "request_id": str(where.request_id),
        "state": "retired",
        "wiped": True,
        "revision": None,
    }
    assert await mdm.verify(where, wanted, None) == ["state is 'retired', expected 'enrolled'"]

    events = events_of(await deliveries(control, wanted["serial"]))
    assert [(d["type"], d["verdict"]) for d in events] == [
        ("device.enrolled", "applied"),
        ("device.retired", "applied"),
    ]
    assert events[1]["body"]["wipe"] is True


async def test_drift_is_reported_and_repaired(
    config: StackConfig,
    licences: LicenceDriver,
    mdm: MdmDriver,
    control: httpx.AsyncClient,
) -> None:
    where, wanted = placement(), seat()
    await licences.apply(where, wanted, None)
    behind_our_back = {
        "type": "licence.assigned",
        "assignment_id": str(where.resource_id),
        "request_id": str(where.request_id),
        **wanted,
        "assignee": "mallory",
    }
    changed = await signed(control, config, "licence-vendor", "POST", "/events", behind_our_back)
    assert changed.status_code == 200
    assert await licences.verify(where, wanted, None) == ["assignee is 'mallory', expected 'alice'"]
    await licences.apply(where, wanted, None)  # the same configuration as before, sent anew
    assert await licences.verify(where, wanted, None) == []

    device_at, device = placement("mdm"), laptop()
    await mdm.apply(device_at, device, None)
    retired = {**device, "type": "device.retired", "request_id": str(device_at.request_id)}
    assert (await signed(control, config, "mdm", "POST", "/events", retired)).status_code == 200
    assert await mdm.verify(device_at, device, None) == ["state is 'retired', expected 'enrolled'"]
    await mdm.apply(device_at, device, None)
    assert await mdm.verify(device_at, device, None) == []


async def test_receiver_refuses_bad_signatures_stale_timestamps_and_reused_ids(
    config: StackConfig, control: httpx.AsyncClient
) -> None:
    where, wanted = placement(), seat()
    event = {
        "type": "licence.assigned",
        "assignment_id": str(where.resource_id),
        "request_id": str(where.request_id),
        **wanted,
    }
    forged = "whsec_" + "A" * 43 + "="
    bad = await signed(control, config, "licence-vendor", "POST", "/events", event, secret=forged)
    assert bad.status_code == 401
    old = datetime.now(UTC) - timedelta(minutes=10)
    stale = await signed(control, config, "licence-vendor", "POST", "/events", event, sent_at=old)
    assert stale.status_code == 401
    unsigned = await control.post("/licence-vendor/events", json=event)
    assert unsigned.status_code == 401
    read = f"/assignments/{where.resource_id}"
    assert (await control.get(f"/licence-vendor{read}")).status_code == 401
    assert (await signed(control, config, "licence-vendor", "GET", read)).status_code == 404

    webhook_id = f"msg_test_{uuid.uuid4().hex}"
    first = await signed(
        control, config, "licence-vendor", "POST", "/events", event, webhook_id=webhook_id
    )
    again = await signed(
        control, config, "licence-vendor", "POST", "/events", event, webhook_id=webhook_id
    )
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    other = event | {"assignee": "mallory"}
    reused = await signed(
        control, config, "licence-vendor", "POST", "/events", other, webhook_id=webhook_id
    )
    assert reused.status_code == 409
    assignment = await signed(control, config, "licence-vendor", "GET", read)
    assert assignment.json()["assignee"] == "alice"

    found = await deliveries(control, str(where.resource_id))
    assert [(d["signature"], d["verdict"], d["status"]) for d in found] == [
        ("invalid", "rejected", 401),
        ("stale", "rejected", 401),
        ("missing", "rejected", 401),
        ("missing", "rejected", 401),
        ("valid", "read", 404),
        ("valid", "applied", 200),
        ("valid", "replayed", 200),
        ("valid", "id-reused", 409),
        ("valid", "read", 200),
    ]


async def test_receiver_validates_bodies(config: StackConfig, control: httpx.AsyncClient) -> None:
    incomplete = {"type": "device.enrolled", "serial": "C02BROKEN", "model": "mbp-14"}
    response = await signed(control, config, "mdm", "POST", "/events", incomplete)
    assert response.status_code == 422
    unknown_kind = {
        **laptop(),
        "kind": "toaster",
        "type": "device.enrolled",
        "request_id": str(uuid.uuid4()),
    }
    response = await signed(control, config, "mdm", "POST", "/events", unknown_kind)
    assert response.status_code == 422


async def test_a_driver_with_the_wrong_secret_fails_permanently(
    config: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wrong = tmp_path_factory.mktemp("wrong") / "webhook.secret"
    wrong.write_text("whsec_" + "B" * 43 + "=\n")
    driver = LicenceDriver(
        WebhookTarget(url=f"{receiver.url(config)}/licence-vendor", secret_file=wrong),
        timeout_s=TIMEOUT_S,
        allow_list=allowed(config),
    )
    try:
        with pytest.raises(PermanentError, match="401") as raised:
            await driver.apply(placement(), seat(), None)
        assert not isinstance(raised.value, TargetConflict)
        assert "BBBB" not in str(raised.value)
    finally:
        await driver.close()


async def test_a_wrong_url_is_not_taken_for_a_missing_resource(config: StackConfig) -> None:
    driver = LicenceDriver(
        WebhookTarget(
            url=f"{receiver.url(config)}/no-such-vendor",
            secret_file=receiver.secret_file(config, "licence-vendor"),
        ),
        timeout_s=TIMEOUT_S,
        allow_list=allowed(config),
    )
    try:
        with pytest.raises(PermanentError, match="404"):
            await driver.verify(placement(), seat(), None)
    finally:
        await driver.close()


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_errors_that_may_pass_are_target_unavailable(
    status: int, licences: LicenceDriver, control: httpx.AsyncClient
) -> None:
    where, wanted = placement(), seat()
    fault = {"system": "licence-vendor", "status": status, "count": 1}
    assert (await control.post("/_test/faults", json=fault)).status_code == 200
    with pytest.raises(TargetUnavailable, match=str(status)):
        await licences.apply(where, wanted, None)
    await licences.apply(where, wanted, None)
    assert await licences.verify(where, wanted, None) == []


async def test_a_hanging_system_is_target_unavailable_within_the_timeout(
    mdm: MdmDriver, control: httpx.AsyncClient
) -> None:
    fault = {"system": "mdm", "delay_s": 5, "count": 1}
    assert (await control.post("/_test/faults", json=fault)).status_code == 200
    started = time.monotonic()
    with pytest.raises(TargetUnavailable):
        await mdm.verify(placement("mdm"), laptop(), None)
    assert time.monotonic() - started < TIMEOUT_S + 0.5


async def test_receiver_down_then_restarted_keeps_its_state(
    config: StackConfig, licences: LicenceDriver, mdm: MdmDriver
) -> None:
    where, wanted = placement(), seat()
    device_at, device = placement("mdm"), laptop()
    await licences.apply(where, wanted, None)
    await mdm.apply(device_at, device, None)

    receiver.stop(config)
    assert receiver.running_pid(config) is None
    started = time.monotonic()
    with pytest.raises(TargetUnavailable) as raised:
        await licences.verify(where, wanted, None)
    # A class of failure, not the socket's words nor the port it tried.
    assert str(raised.value).endswith(": connection_failed")
    assert str(config.receiver_port) not in str(raised.value)
    assert "refused" not in str(raised.value).lower()
    with pytest.raises(TargetUnavailable):
        await mdm.remove(device_at, device)
    assert time.monotonic() - started < 2 * TIMEOUT_S + 0.5

    receiver.start(config)
    assert await licences.verify(where, wanted, None) == []
    assert await mdm.verify(device_at, device, None) == []
    with pytest.raises(TargetConflict):  # the seat is still taken after the restart
        await licences.apply(placement(), wanted, None)


async def test_a_target_the_allow_list_does_not_name_is_not_called(
    config: StackConfig, control: httpx.AsyncClient
) -> None:
    where = placement()
    other_port = AllowList.parse(f"127.0.0.1:{config.receiver_port + 1}")
    for allow_list in (AllowList(), other_port):
        driver = LicenceDriver(
            target(config, "licence-vendor"), timeout_s=TIMEOUT_S, allow_list=allow_list
        )
        try:
            with pytest.raises(TargetUnavailable, match=r": refused_address$"):
                await driver.verify(where, seat(), None)
        finally:
            await driver.close()
    assert await deliveries(control, str(where.resource_id)) == []
