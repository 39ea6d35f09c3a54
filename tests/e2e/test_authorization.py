"""The authorization table at work, in the stories the matrix test cannot tell: a colleague's
secret cannot be taken over, the operator's keys are the operator's, shared pools are the
operator's, an export keeps other tenants' records to their hashes, a refused audit read is
recorded, and an Idempotency-Key belongs to its caller."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from tests.e2e.client import Platform, key_for
from tests.polling import eventually

from auditor import checkpoints

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def person(
    platform: Platform, roles: list[str], *, tenant: str = "default", name: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the platform's services as a new key of `tenant` with `roles`."""
    key = await key_for(platform.stack, name=name or unique("p"), tenant=tenant, roles=roles)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    ) as client:
        yield client


async def test_a_colleague_can_neither_reveal_nor_take_over_anothers_login(platform: Platform):
    api = platform.stack.service_url("request-api")
    async with (
        person(platform, ["requester"], name=unique("alice")) as alice,
        person(platform, ["requester"], name=unique("bob")) as bob,
        person(platform, ["admin"]) as admin,
    ):
        submitted = await alice.post(
            api + "/v1/requests",
            json={"catalog_item": "postgres_schema", "parameters": {"name": unique("own_")}},
        )
        assert submitted.status_code == 202, submitted.text
        request = await platform.wait_terminal(submitted.json()["id"])
        assert request["status"] == "completed", request
        resource = f"{api}/v1/resources/{request['resource_id']}"

        # Bob, a plain requester of the same tenant, may not reveal it, nor remove it.
        assert (await bob.get(resource + "/credentials")).status_code == 403
        assert (await bob.delete(resource)).status_code == 403
        assert (await bob.patch(resource, json={"rotate_credentials": True})).status_code == 403
        deployer = platform.stack.service_url("deployer")
        direct = await bob.get(f"{deployer}/v1/credentials/{request['resource_id']}")
        assert direct.status_code == 403, direct.text

        # An admin may rotate it, but the new secret is alice's alone.
        rotated = await admin.patch(resource, json={"rotate_credentials": True})
        assert rotated.status_code == 202, rotated.text
        rotation = await platform.wait_terminal(rotated.json()["id"])
        assert rotation["status"] == "completed", rotation
        refused = await admin.get(resource + "/credentials")
        assert refused.status_code == 403, refused.text
        assert "reveal credentials" in refused.json()["detail"]
        revealed = await alice.get(resource + "/credentials")
        assert revealed.status_code == 200 and revealed.json()["password"], revealed.text

        # Lists follow the same rule: bob's show none of alice's; the admin's show them.
        for listing, wanted in (("requests", request["id"]), ("resources", request["resource_id"])):
            seen_by = {}
            for who, client in (("alice", alice), ("bob", bob), ("admin", admin)):
                page = await client.get(f"{api}/v1/{listing}", params={"limit": 200})
                assert page.status_code == 200, page.text
                seen_by[who] = wanted in {item["id"] for item in page.json()["items"]}
            assert seen_by == {"alice": True, "bob": False, "admin": True}, (listing, seen_by)


async def test_only_the_operator_rotates_or_revokes_a_key_with_the_platform_scope(
    platform: Platform,
):
    keys = platform.stack.service_url("request-api") + "/v1/keys"
    second = await platform.api.post(
        "/v1/keys", json={"name": unique("op"), "roles": ["admin"], "scopes": ["platform"]}
    )
    assert second.status_code == 201, second.text
    operator_key = second.json()["id"]
    async with person(platform, ["admin"]) as admin:
        listed = (await admin.get(keys)).json()["items"]
        bootstrap = next(k for k in listed if "platform" in k["scopes"] and k["id"] != operator_key)
        for key_id in (bootstrap["id"], operator_key):
            rotate = await admin.post(f"{keys}/{key_id}/rotate")
            assert rotate.status_code == 403, rotate.text
            assert "secret" not in rotate.json()
            assert (await admin.delete(f"{keys}/{key_id}")).status_code == 403
        # Its own tenant's other keys remain the admin's to manage.
        bot = await admin.post(keys, json={"name": unique("bot"), "roles": ["requester"]})
        assert (await admin.post(f"{keys}/{bot.json()['id']}/rotate")).status_code == 200
    # The operator still works, and may rotate a platform key.
    assert (await platform.api.get("/v1/keys")).status_code == 200
    assert (await platform.api.post(f"/v1/keys/{operator_key}/rotate")).status_code == 200
    assert (await platform.api.delete(f"/v1/keys/{operator_key}")).status_code == 204


async def test_shared_pools_are_stocked_by_the_operator_and_a_tenants_own_by_its_admins(
    platform: Platform,
):
    pools = platform.stack.service_url("allocator") + "/internal/pools"
    units = {"units": [unique("seat-")]}
    async with (
        person(platform, ["admin"]) as admin,
        person(platform, ["admin"], tenant="ten-seats") as other_admin,
    ):
        shared = await admin.post(f"{pools}/licence:figma/units", json=units)
        assert shared.status_code == 403, shared.text
        own = unique("lab:")
        made = await admin.post(f"{pools}/{own}/units", json=units)
        assert made.status_code == 200, made.text
        assert made.json() == {"pool": own, "shared": False, "added": 1}
        # Another tenant's own pool does not exist for it.
        assert (await other_admin.post(f"{pools}/{own}/units", json=units)).status_code == 404
    # A new pool the operator stocks is shared (not the seed's: other tests count its units).
    by_operator = await platform.api.post(f"{pools}/{unique('shared:')}/units", json=units)
    assert by_operator.status_code == 200 and by_operator.json()["shared"] is True


async def test_an_export_holds_only_the_callers_tenant_in_full_and_still_verifies(
    platform: Platform,
):
    audit = platform.stack.service_url("auditor")
    await platform.completed("postgres_schema", name=unique("exp_"))
    async with person(platform, ["auditor"], tenant="ten-seats") as outsider:

        async def sealed() -> list[checkpoints.Checkpoint]:
            # A range the checkpoints seal whole, within one export's limit.
            found = (await outsider.get(audit + "/v1/audit/checkpoints")).json()["items"]
            return [checkpoints.Checkpoint.from_dict(c) for c in found if c["last_seq"] <= 10_000]

        within = await eventually(sealed, "a checkpoint (the test stack seals every second)")
        exported = await outsider.get(
            audit + "/v1/audit/export", params={"first": 1, "last": within[-1].last_seq}
        )
        assert exported.status_code == 200, exported.text
        records = exported.json()["records"]
        withheld = [r for r in records if r["content"] is None]
        shown = [r for r in records if r["content"] is not None]
        assert withheld, "the default tenant's records are in the range"
        assert all(r["content"]["tenant"] == "ten-seats" for r in shown), shown[:3]
        public_key = load_pem_public_key(
            (await outsider.get(audit + "/v1/audit/public-key")).text.encode()
        )
        assert isinstance(public_key, Ed25519PublicKey)
        verdict = checkpoints.verify_export(records, within, public_key)
        assert verdict.ok and verdict.withheld == len(withheld), verdict
    # The operator's export is whole; and each export is itself a recorded read.
    whole = (await platform.audit.get("/v1/audit/export", params={"first": 1})).json()
    assert all(r["content"] is not None for r in whole["records"])
    reads = await platform.audit.get(
        "/v1/audit/records", params={"event_type": "audit.read", "limit": 500}
    )
    assert any(r["data"]["query"].get("view") == "export" for r in reads.json()["items"])


async def test_a_refused_audit_read_is_recorded(platform: Platform):
    request = await platform.completed("postgres_schema", name=unique("aud_"))
    audit = platform.stack.service_url("auditor")
    colleague = unique("colin")
    async with person(platform, ["requester"], name=colleague) as colin:
        history = await colin.get(f"{audit}/v1/audit/requests/{request['id']}")
        assert history.status_code == 403, history.text
        others = await colin.get(f"{audit}/v1/audit/records", params={"person": "someone"})
        assert others.status_code == 403, others.text
        report = await colin.get(
            f"{audit}/v1/audit/reports",
            params={"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        )
        assert report.status_code == 403, report.text

    async def refusals() -> list[dict] | None:
        found = await platform.audit.get(
            "/v1/audit/records", params={"event_type": "audit.read", "person": colleague}
        )
        refused = [r for r in found.json()["items"] if r["data"]["refused"]]
        return refused if len(refused) == 3 else None

    records = await eventually(refusals, "the refused reads' records")
    assert {r["outcome"] for r in records} == {"refused"}
    assert [r["data"]["query"] for r in records] == [
        {"request_id": request["id"], "view": "history"},
        {"person": "someone", "view": "records"},
        {"path": "/v1/audit/reports", "action": "read_audit_reports"},
    ]


async def test_the_same_idempotency_key_from_two_callers_is_two_requests(platform: Platform):
    api = platform.stack.service_url("request-api")
    key = {"Idempotency-Key": unique("shared-key-")}
    async with (
        person(platform, ["requester"]) as one,
        person(platform, ["requester"]) as other,
    ):
        bodies = [
            {"catalog_item": "postgres_schema", "parameters": {"name": unique("idem_")}}
            for _ in range(2)
        ]
        first = await one.post(api + "/v1/requests", json=bodies[0], headers=key)
        second = await other.post(api + "/v1/requests", json=bodies[1], headers=key)
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        assert first.json()["id"] != second.json()["id"]
        # Each caller's own retry is still answered from its first answer.
        again = await one.post(api + "/v1/requests", json=bodies[0], headers=key)
        assert again.json()["id"] == first.json()["id"]
