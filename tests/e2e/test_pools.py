"""Pools of identifiable units (licence seats): taken at allocation, given back on rollback.

The licence item's driver comes with the real targets; until then its configuration step has
no template, which exercises the rollback of a unit."""

from __future__ import annotations

import uuid

import pytest
from tests.e2e.client import Platform, fetchval

pytestmark = pytest.mark.integration


def licence(product: str) -> dict:
    name = f"seat_{uuid.uuid4().hex[:10]}"
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


async def test_a_seat_is_planned_taken_and_given_back(platform: Platform):
    free = await free_seats(platform, "licence:figma")
    assert free == 3
    plan = (
        await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=licence("figma"))
    ).json()
    assert plan["decision"] == "accepted"
    assert plan["allocation"]["server_id"] == "licence-vendor"
    assert plan["allocation"]["units"]["seat"].startswith("figma-seat-")
    assert plan["cost"]["monthly"] == 15.0

    request = await platform.wait_terminal(
        (await platform.api.post("/v1/requests", json=licence("figma"))).json()["id"]
    )
    assert request["status"] == "rolled_back", request
    assert request["reasons"][0]["code"] == "no_template"
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
    ("mobile_phone", {"model": "pixel-8", "assignee": "ann"}, {"device": "PX8A"}),
]


@pytest.mark.parametrize(
    ("item", "parameters", "units"), PLANNED_ITEMS, ids=[i[0] for i in PLANNED_ITEMS]
)
async def test_every_catalog_item_can_be_planned(platform: Platform, item, parameters, units):
    """The catalog, quotas and pools already cover the items whose drivers come next."""
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
