"""Several items in one request: each followed on its own, with a rolled-up status."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tests.e2e.client import Platform
from tests.e2e.test_lifecycle import role_exists, schema_exists

pytestmark = pytest.mark.integration


def schema(prefix: str) -> dict:
    return {
        "catalog_item": "postgres_schema",
        "parameters": {"name": f"{prefix}_{uuid.uuid4().hex[:10]}"},
    }


async def wait_bundle(platform: Platform, bundle_id: str, statuses: set[str]) -> dict:
    for _ in range(600):
        bundle: dict = (await platform.api.get(f"/v1/bundles/{bundle_id}")).json()
        if bundle["status"] in statuses:
            return bundle
        await asyncio.sleep(0.1)
    raise AssertionError(f"bundle {bundle_id} stuck: {bundle}")


async def test_a_bundle_rolls_up_its_items(platform: Platform):
    licence = {
        "catalog_item": "software_license",
        "parameters": {
            "name": f"lic_fault_at_deploy_{uuid.uuid4().hex[:8]}",
            "product": "figma",
            "assignee": "ann",
        },
    }
    answer = await platform.api.post("/v1/bundles", json={"items": [schema("bundle"), licence]})
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/v1/bundles/{answer.json()['id']}"
    bundle = await wait_bundle(
        platform, answer.json()["id"], {"completed", "partially_completed", "failed"}
    )
    # The licence's deployment is made to fail, so only the schema completes.
    assert bundle["status"] == "partially_completed", bundle
    assert sorted(i["status"] for i in bundle["items"]) == ["completed", "rolled_back"]


async def test_all_or_nothing_undoes_the_items_that_succeeded(platform: Platform):
    good, bad = schema("aon"), schema("aon_fault_at_deploy")
    answer = await platform.api.post(
        "/v1/bundles", json={"items": [good, bad], "all_or_nothing": True}
    )
    bundle = await wait_bundle(platform, answer.json()["id"], {"rolled_back", "completed"})
    assert bundle["status"] == "rolled_back", bundle
    good_item = next(i for i in bundle["items"] if i["parameters"] == good["parameters"])
    assert good_item["status"] in {"completed", "cancelled"}
    name = good["parameters"]["name"]
    for _ in range(100):
        if not await role_exists(platform, f"{name}_schema_owner"):
            break
        await asyncio.sleep(0.1)
    assert not await role_exists(platform, f"{name}_schema_owner")
    assert not await schema_exists(platform, name)


async def test_a_bundle_with_a_bad_item_is_refused_whole(platform: Platform):
    bad = {"catalog_item": "postgres_schema", "parameters": {"name": "X"}}
    answer = await platform.api.post("/v1/bundles", json={"items": [schema("ok"), bad]})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "items.1.parameters.name"
