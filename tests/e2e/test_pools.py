"""Pools of identifiable units (licence seats, addresses, devices): taken at allocation,
given back on rollback and on deprovision."""

from __future__ import annotations

import uuid

import httpx
import pytest
from tests.e2e.client import Platform, fetchval
from tests.e2e.test_lifecycle import wait_for_status

pytestmark = pytest.mark.integration


def licence(product: str, marker: str = "") -> dict:
    name = f"seat_{marker}{uuid.uuid4().hex[:10]}"
    return {
        "catalog_item": "software_license",
        "parameters": {"name": name, "product": product, "assignee": "alice"},
    }


async def free_seats(platform: Platform, pool: str) -> int:
    return int(
        await fetchval(
            platform.stack,
            "allocator",
            "SELECT count(*) FROM pool_units WHERE pool = $1 AND state = 'free'",
            pool,
        )
    )


async def test_a_seat_is_planned_taken_and_given_back_on_rollback(platform: Platform):
    free = await free_seats(platform, "licence:figma")
    assert free > 0
    plan = (
        await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=licence("figma"))
    ).json()
    assert plan["decision"] == "accepted"
    assert plan["allocation"]["server_id"] == "licence-vendor"
    assert plan["allocation"]["units"]["seat"].startswith("figma-seat-")
    assert plan["cost"]["monthly"] == 15.0

    # Fails after the vendor registered the seat: the rollback unregisters it, frees the seat.
    request = await platform.wait_terminal(
        (await platform.api.post("/v1/requests", json=licence("figma", "fault_at_verify"))).json()[
            "id"
        ]
    )
    assert request["status"] == "rolled_back", request
    assert request["reasons"][0]["code"] == "target_failed"
    history = (await platform.audit.get(f"/v1/audit/requests/{request['id']}")).json()
    allocated = next(e for e in history["events"] if e["type"] == "resource.allocated")
    assert allocated["data"]["units"]["seat"].startswith("figma-seat-")
    assert await free_seats(platform, "licence:figma") == free


async def test_an_empty_pool_is_out_of_stock_in_plan_and_in_fact(platform: Platform):
    body = licence("jetbrains")
    plan = (await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=body)).json()
    assert plan["decision"] == "failed"
    assert plan["reasons"][0]["code"] == "out_of_stock"
    request = await platform.wait_terminal(
        (await platform.api.post("/v1/requests", json=body)).json()["id"]
    )
    assert request["status"] == "failed"
    assert request["reasons"][0]["code"] == "out_of_stock"


PLANNED_ITEMS = [
    (
        "directory_account",
        {"given_name": "Ann", "family_name": "Lee", "department": "platform"},
        {},
    ),
    (
        "cloud_vm",
        {"vcpu": 2, "ram_gb": 4, "image": "debian-12", "subnet": "lab"},
        {"ip": "10.20.0."},
    ),
    ("storage_bucket", {"size_gb": 50, "versioning": True}, {}),
    ("laptop", {"model": "mbp-14", "assignee": "ann"}, {"device": "C02MBP14A"}),
    ("mobile_phone", {"model": "iphone-15", "assignee": "ann"}, {"device": "F2LIP15"}),
]


@pytest.mark.parametrize(
    ("item", "parameters", "units"), PLANNED_ITEMS, ids=[i[0] for i in PLANNED_ITEMS]
)
async def test_every_catalog_item_can_be_planned(platform: Platform, item, parameters, units):
    """The catalog, quotas and pools cover every item."""
    body = {
        "catalog_item": item,
        "parameters": {"name": f"plan_{uuid.uuid4().hex[:8]}", **parameters},
    }
    plan = (await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=body)).json()
    assert plan["decision"] == "accepted", plan
    assert plan["cost"]["monthly"] >= 0
    for role, prefix in units.items():
        assert plan["allocation"]["units"][role].startswith(prefix), plan


async def test_a_big_vm_needs_approval_and_counts_vcpu_against_the_quota(platform: Platform):
    body = {
        "catalog_item": "cloud_vm",
        "parameters": {
            "name": "bigvm_" + uuid.uuid4().hex[:6],
            "vcpu": 12,
            "ram_gb": 32,
            "image": "debian-12",
            "subnet": "lab",
        },
    }
    plan = (await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=body)).json()
    assert plan["approval_required"] is True


async def test_out_of_stock_devices_wait_on_backorder_until_stock_arrives(platform: Platform):
    phone = {"model": "pixel-8", "assignee": "ann"}  # the test seed has no pixel-8 in stock
    body = {"catalog_item": "mobile_phone", "parameters": {"name": "bo_plan", **phone}}
    plan = (await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=body)).json()
    assert plan["decision"] == "backordered", plan
    first = await platform.submit("mobile_phone", name=f"bo_{uuid.uuid4().hex[:8]}", **phone)
    second = await platform.submit("mobile_phone", name=f"bo_{uuid.uuid4().hex[:8]}", **phone)
    for request in (first, second):
        await wait_for_status(platform, request["id"], "backordered")

    cancelled = await platform.api.post(f"/v1/requests/{second['id']}/cancel")
    assert cancelled.status_code == 202
    assert (await platform.wait_terminal(second["id"]))["status"] == "cancelled"

    async with httpx.AsyncClient(base_url=platform.stack.service_url("allocator")) as allocator:
        path, units = "/internal/pools/phone:pixel-8/units", {"units": ["PX8B001"]}
        assert (await allocator.post(path, json=units)).status_code == 401
        stock = await allocator.post(path, json=units, headers=platform.api.headers)
        assert stock.json() == {"pool": "phone:pixel-8", "shared": True, "added": 1}
    # Allocated from the new stock, then enrolled with the MDM.
    request = await platform.wait_terminal(first["id"])
    history = (await platform.audit.get(f"/v1/audit/requests/{first['id']}")).json()
    types = [event["type"] for event in history["events"]]
    assert types.index("allocation.backordered") < types.index("resource.allocated"), types
    allocated = next(e for e in history["events"] if e["type"] == "resource.allocated")
    assert allocated["data"]["units"] == {"device": "PX8B001"}
    assert request["status"] == "completed", request
    assert await free_seats(platform, "phone:pixel-8") == 0
    removed = await platform.deprovision(request["resource_id"])
    assert removed["status"] == "completed", removed
    assert await free_seats(platform, "phone:pixel-8") == 1
