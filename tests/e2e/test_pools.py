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
    assert plan["allocation"] == {"server_id": "licence-vendor"}
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
