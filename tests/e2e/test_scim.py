"""SCIM 2.0 for identity providers, end to end: a created user is onboarded (their directory
account read back over LDAP), a group change changes their directory groups, deactivation and
deletion offboard them; filtering, pagination, ETags, uniqueness and tenancy over /scim/v2."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, key_for
from tests.e2e.test_targets import groups_of
from tests.polling import eventually

from devstack.stack import Stack

pytestmark = pytest.mark.integration

SCIM = "/scim/v2"
SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def new_user(person: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": f"{person}@example.com",
        "name": {"givenName": "Ada", "familyName": f"Lovelace{person[-4:]}"},
        "displayName": f"Ada {person}",
        "emails": [{"value": f"{person}@example.com", "primary": True, "type": "work"}],
        "active": True,
        ENTERPRISE: {"department": "Platform"},
        **extra,
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def unique_person(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def created(platform: Platform, body: dict[str, Any], kind: str = "Users") -> dict[str, Any]:
    answer = await platform.api.post(f"{SCIM}/{kind}", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"].startswith(SCIM_JSON)
    assert answer.headers["ETag"] == answer.json()["meta"]["version"]
    assert answer.headers["Location"] == answer.json()["meta"]["location"]
    return dict(answer.json())


async def request_ids(stack: Stack, user_id: str) -> list[str]:
    """The requests the user's lifecycle filed (kept on the user, not exposed over SCIM)."""
    import asyncpg

    connection = await asyncpg.connect(stack.database_dsn("request_api"))
    try:
        found = await connection.fetchval(
            "SELECT request_ids FROM scim_users WHERE id = $1", uuid.UUID(user_id)
        )
    finally:
        await connection.close()
    return list(json.loads(found)) if found else []


async def requests_of(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    ids = await request_ids(platform.stack, user_id)
    return [(await platform.api.get(f"/v1/requests/{i}")).json() for i in ids]


async def all_completed(platform: Platform, user_id: str, count: int) -> list[dict[str, Any]]:
    ids = await request_ids(platform.stack, user_id)
    assert len(ids) == count, ids
    done = [await platform.wait_terminal(i, timeout_s=90) for i in ids]
    assert {r["status"] for r in done} == {"completed"}, [
        (r["catalog_item"], r["status"], r["reasons"]) for r in done
    ]
    return done


async def remaining(platform: Platform, person: str) -> list[str]:
    answer = await platform.api.get(f"/v1/people/{person}/resources")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["remaining"])


async def test_a_user_is_onboarded_moved_between_groups_deactivated_and_reactivated(
    platform: Platform,
):
    stack, person = platform.stack, unique_person("ada")
    roles = [{"value": "analyst", "primary": True}]
    user = await created(platform, new_user(person, roles=roles))
    # The analyst's bundle (catalog/onboarding.json): the directory account, a Figma seat.
    onboarding = await all_completed(platform, user["id"], 2)
    assert sorted(r["catalog_item"] for r in onboarding) == [
        "directory_account",
        "software_license",
    ]
    assert {r["parameters"]["assignee"] for r in onboarding} == {person}
    birthright = {"staff", "tenant-default", "dept-platform", "role-analyst"}
    assert groups_of(stack, person) == birthright

    # Joining a group is an access change: the directory account's groups follow.
    group = await created(platform, {"schemas": [GROUP], "displayName": "Web Admins"}, "Groups")
    answer = await platform.api.patch(
        f"{SCIM}/Groups/{group['id']}",
        json=patch({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
    )
    assert answer.status_code == 200, answer.text
    assert [m["value"] for m in answer.json()["members"]] == [user["id"]]
    modify = (await requests_of(platform, user["id"]))[-1]
    assert modify["operation"] == "modify"
    assert (await platform.wait_terminal(modify["id"]))["status"] == "completed"
    assert groups_of(stack, person) == birthright | {"web-admins"}
    listed = (await platform.api.get(f"{SCIM}/Users/{user['id']}")).json()
    assert [(g["value"], g["display"]) for g in listed["groups"]] == [(group["id"], "Web Admins")]

    # Leaving it, by a value filter on the members.
    answer = await platform.api.patch(
        f"{SCIM}/Groups/{group['id']}",
        json=patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
    )
    assert answer.status_code == 200, answer.text
    assert "members" not in answer.json()
    modify = (await requests_of(platform, user["id"]))[-1]
    assert (await platform.wait_terminal(modify["id"]))["status"] == "completed"
    assert groups_of(stack, person) == birthright

    # active: false is a leaver: everything the person holds is deprovisioned.
    deactivate = patch({"op": "replace", "path": "active", "value": False})
    answer = await platform.api.patch(f"{SCIM}/Users/{user['id']}", json=deactivate)
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is False
    offboarding = (await requests_of(platform, user["id"]))[-2:]
    assert [r["operation"] for r in offboarding] == ["deprovision"] * 2
    assert offboarding[0]["catalog_item"] == "directory_account"
    for request in offboarding:
        assert (await platform.wait_terminal(request["id"]))["status"] == "completed"
    assert await remaining(platform, person) == []
    assert groups_of(stack, person) == set()

    # Reactivated: onboarded again, with a new account (the old one is kept disabled).
    reactivate = patch({"op": "replace", "path": "active", "value": True})
    answer = await platform.api.patch(f"{SCIM}/Users/{user['id']}", json=reactivate)
    assert answer.status_code == 200, answer.text
    again = (await requests_of(platform, user["id"]))[-2:]
    for request in again:
        assert (await platform.wait_terminal(request["id"], timeout_s=90))["status"] == "completed"
    account = next(r for r in again if r["catalog_item"] == "directory_account")
    assert account["parameters"]["name"] == f"{person}_2"
    assert groups_of(stack, f"{person}_2") == birthright

    # Deleted: offboarded, and gone.
    answer = await platform.api.delete(f"{SCIM}/Users/{user['id']}")
    assert answer.status_code == 204, answer.text
    gone = await platform.api.get(f"{SCIM}/Users/{user['id']}")
    assert gone.status_code == 404
    assert gone.json()["schemas"] == [ERROR] and gone.json()["status"] == "404"
    await eventually(
        lambda: _nothing_left(platform, person), timeout_s=60, what="the person offboarded"
    )
    assert groups_of(stack, f"{person}_2") == set()


async def _nothing_left(platform: Platform, person: str) -> bool:
    answer = (await platform.api.get(f"/v1/people/{person}/resources")).json()
    return bool(answer["items"]) and {r["state"] for r in answer["items"]} == {"retired"}


async def test_a_group_joined_while_the_account_is_being_provisioned_reaches_it(
    platform: Platform,
):
    person = unique_person("gus")
    user = await created(platform, new_user(person))
    member = [{"value": user["id"], "display": "Gus"}]
    body = {"schemas": [GROUP], "displayName": f"Oncall {person}", "members": member}
    await created(platform, body, "Groups")  # at once: the account is still in flight
    (onboarding,) = await request_ids(platform.stack, user["id"])
    assert (await platform.wait_terminal(onboarding, timeout_s=90))["status"] == "completed"
    wanted = {"staff", "tenant-default", "dept-platform", "role-engineer", f"oncall-{person}"}
    await eventually(
        lambda: asyncio.to_thread(lambda: groups_of(platform.stack, person) == wanted),
        timeout_s=60,
        what="the group joined during onboarding in the directory",
    )


async def test_delete_while_onboarding_is_in_flight_leaves_nothing(platform: Platform):
    person = unique_person("fay")
    user = await created(platform, new_user(person))
    (onboarding,) = await request_ids(platform.stack, user["id"])
    answer = await platform.api.delete(f"{SCIM}/Users/{user['id']}")
    assert answer.status_code == 204, answer.text
    ended = await platform.wait_terminal(onboarding, timeout_s=90)
    # Cancelled in time, or completed and then deprovisioned by the offboarding.
    if ended["status"] == "completed":
        await eventually(lambda: _nothing_left(platform, person), timeout_s=60)
    else:
        assert ended["status"] == "cancelled", ended
    assert await remaining(platform, person) == []


async def test_filters_and_pagination(platform: Platform):
    tag = uuid.uuid4().hex[:6]
    before = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    people = [f"flt{tag}{n}" for n in range(3)]
    for index, person in enumerate(people):
        body = new_user(person, active=index != 2)
        body["name"]["familyName"] = "Hopper" if index == 0 else "Lamarr"
        await created(platform, body)

    async def names(filter_: str, **params: Any) -> list[str]:
        answer = await platform.api.get(f"{SCIM}/Users", params={"filter": filter_, **params})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(SCIM_JSON)
        return sorted(u["userName"].split("@")[0] for u in answer.json().get("Resources", []))

    ours = f'userName sw "flt{tag}"'
    assert await names(ours) == people
    assert await names(f'USERNAME SW "FLT{tag}"') == people  # names and values: any case
    assert await names(f'userName eq "{people[1]}@EXAMPLE.com"') == [people[1]]
    assert await names(f"{ours} and active eq true") == people[:2]
    assert await names(f"{ours} and not (active eq true)") == people[2:]
    assert await names(f'{ours} and name.familyName eq "hopper"') == people[:1]
    assert await names(f'{ours} and name.familyName ne "Hopper"') == people[1:]
    assert await names(f'emails.value co "{people[2]}@"') == people[2:]
    assert await names(f'{ours} and emails.value ew "example.com"') == people
    assert await names(f"{ours} and displayName pr") == people
    assert await names(f'{ours} and meta.lastModified gt "{before}"') == people
    assert await names(f'{ours} and meta.lastModified lt "{before}"') == []
    assert await names(
        f'userName eq "{people[0]}@example.com" or userName eq "{people[2]}@example.com"'
    ) == [people[0], people[2]]
    assert await names(f"{ours} and externalId pr") == []

    # Pages: 1-based startIndex, count, the total over all pages.
    pages = []
    for start in (1, 2, 3):
        answer = await platform.api.get(
            f"{SCIM}/Users", params={"filter": ours, "startIndex": start, "count": 1}
        )
        page = answer.json()
        assert (page["totalResults"], page["itemsPerPage"], page["startIndex"]) == (3, 1, start)
        pages += [u["userName"] for u in page["Resources"]]
    assert sorted(p.split("@")[0] for p in pages) == people
    answer = await platform.api.get(f"{SCIM}/Users", params={"filter": ours, "count": 0})
    assert answer.json()["totalResults"] == 3 and not answer.json().get("Resources")

    # Only the attributes asked for (id and schemas always).
    answer = await platform.api.get(
        f"{SCIM}/Users", params={"filter": ours, "attributes": "userName"}
    )
    assert {frozenset(u) for u in answer.json()["Resources"]} == {
        frozenset({"schemas", "id", "userName"})
    }

    for bad in ('userName zz "x"', 'nosuch eq "x"', "active eq", 'meta.lastModified gt "soon"'):
        answer = await platform.api.get(f"{SCIM}/Users", params={"filter": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["scimType"] == "invalidFilter", answer.json()


async def test_etags_uniqueness_and_errors(platform: Platform):
    person = unique_person("eve")
    user = await created(platform, new_user(person, active=False))
    url = f"{SCIM}/Users/{user['id']}"
    read = await platform.api.get(url)
    assert read.headers["ETag"] == 'W/"1"' == read.json()["meta"]["version"]

    replacement = new_user(person, active=False, displayName="Eve Renamed")
    stale = await platform.api.put(url, json=replacement, headers={"If-Match": 'W/"0"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["schemas"] == [ERROR]
    answer = await platform.api.put(url, json=replacement, headers={"If-Match": 'W/"1"'})
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == 'W/"2"' and answer.json()["displayName"] == "Eve Renamed"
    stale = await platform.api.patch(
        url,
        json=patch({"op": "replace", "path": "displayName", "value": "x"}),
        headers={"If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    stale = await platform.api.delete(url, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert (await platform.api.get(url)).status_code == 200

    # userName is unique per tenant, regardless of case.
    taken = await platform.api.post(
        f"{SCIM}/Users", json=new_user(person, userName=f"{person.upper()}@Example.COM")
    )
    assert taken.status_code == 409, taken.text
    assert taken.json()["scimType"] == "uniqueness" and taken.json()["status"] == "409"

    # Errors are SCIM Error documents with the RFC 7644 keyword.
    answer = await platform.api.post(f"{SCIM}/Users", json={"schemas": [USER]})  # no userName
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidValue", answer.text
    read_only = patch({"op": "replace", "path": "id", "value": "x"})
    answer = await platform.api.patch(url, json=read_only)
    assert answer.status_code == 400 and answer.json()["scimType"] == "mutability", answer.text
    answer = await platform.api.post(
        f"{SCIM}/Users", content=b"{not json", headers={"Content-Type": SCIM_JSON}
    )
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidSyntax"
    answer = await platform.api.patch(
        url, json=patch({"op": "replace", "path": 'emails[type eq "home"].value', "value": "x"})
    )
    assert answer.status_code == 400 and answer.json()["scimType"] == "noTarget", answer.text
    answer = await platform.api.post(
        f"{SCIM}/Groups",
        json={"schemas": [GROUP], "displayName": "g", "members": [{"value": str(uuid.uuid4())}]},
    )
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidValue"


async def test_another_tenant_sees_nothing_and_only_admins_write(platform: Platform):
    stack = platform.stack
    user = await created(platform, new_user(unique_person("ten"), active=False))
    url = f"{SCIM}/Users/{user['id']}"
    finance_admin = await key_for(stack, name="finance-idp", tenant="finance", roles=["admin"])
    requester = await key_for(stack, name="someone", tenant="default", roles=["requester"])
    base = stack.service_url("request-api")
    async with (
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {finance_admin}"}) as f,
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {requester}"}) as r,
    ):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            body = None if method in ("GET", "DELETE") else new_user("x")
            if method == "PATCH":
                body = patch({"op": "replace", "path": "active", "value": True})
            answer = await f.request(method, url, json=body)
            assert answer.status_code == 404, (method, answer.text)
            assert answer.json()["schemas"] == [ERROR]
        listed = (await f.get(f"{SCIM}/Users", params={"filter": f'id eq "{user["id"]}"'})).json()
        assert listed["totalResults"] == 0
        # The same userName is free in another tenant.
        twin = {**new_user("y"), "userName": user["userName"], "active": False}
        assert (await f.post(f"{SCIM}/Users", json=twin)).status_code == 201

        activate = patch({"op": "replace", "path": "active", "value": True})
        assert (await r.post(f"{SCIM}/Users", json=new_user("z"))).status_code == 403
        assert (await r.patch(url, json=activate)).status_code == 403
        assert (await r.delete(url)).status_code == 403
        assert (await r.get(url)).status_code == 403
    async with httpx.AsyncClient(base_url=base) as anonymous:
        answer = await anonymous.get(f"{SCIM}/Users")
        assert answer.status_code == 401 and answer.json()["schemas"] == [ERROR]
    assert (await platform.api.get(url)).json()["active"] is False  # untouched


async def test_discovery_and_unknown_paths(platform: Platform):
    config = (await platform.api.get(f"{SCIM}/ServiceProviderConfig")).json()
    assert config["patch"]["supported"] is True and config["etag"]["supported"] is True
    types = (await platform.api.get(f"{SCIM}/ResourceTypes")).json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    user_type = (await platform.api.get(f"{SCIM}/ResourceTypes/User")).json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = (await platform.api.get(f"{SCIM}/Schemas")).json()
    assert {s["id"] for s in schemas["Resources"]} == {USER, ENTERPRISE, GROUP}
    assert (await platform.api.get(f"{SCIM}/Schemas/{USER}")).json()["name"] == "User"
    for path in (f"{SCIM}/Schemas/urn:nope", f"{SCIM}/Nope", f"{SCIM}/Users/not-an-id"):
        answer = await platform.api.get(path)
        assert answer.status_code == 404 and answer.json()["schemas"] == [ERROR], path
    assert (await platform.api.post(f"{SCIM}/ServiceProviderConfig")).status_code == 405
