"""Every catalog item's driver, end to end through the REST API against the real local
target: provision, verify, modify where it applies, deprovision. A target that is down, fails
or hangs ends in a clean rollback; drift is detected; offboarding removes what a person holds.

Each target is inspected here through its own protocol (LDAP, the AWS API, the receiver's
record of signed webhooks), never through the platform's own view of it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import httpx
import ldap3
import pytest
from ldap3.core.exceptions import LDAPException
from tests.e2e.client import Platform, fetchval, key_for
from tests.e2e.test_lifecycle import wait_for_status
from tests.polling import eventually

from devstack import cloud, ldap, receiver
from devstack.stack import Stack

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- the directory, read over LDAP --------------------------------------------------------


@contextlib.contextmanager
def bound(stack: Stack, dn: str, password: str) -> Iterator[ldap3.Connection]:
    connection = ldap3.Connection(ldap3.Server(ldap.url(stack.config)), dn, password)
    try:
        connection.bind()
        yield connection
    finally:
        with contextlib.suppress(LDAPException, OSError):
            connection.unbind()
        if connection.socket is not None:  # ldap3 leaves it open after a failed bind
            connection.socket.close()


def directory(stack: Stack) -> contextlib.AbstractContextManager[ldap3.Connection]:
    password = ldap.admin_password_file(stack.config).read_text().strip()
    return bound(stack, ldap.ADMIN_DN, password)


def user_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{ldap.BASE_DN}"


def entry_of(stack: Stack, uid: str) -> dict[str, Any] | None:
    with directory(stack) as connection:
        connection.search(user_dn(uid), "(objectClass=*)", ldap3.BASE, attributes=["*"])
        return dict(connection.entries[0].entry_attributes_as_dict) if connection.entries else None


def groups_of(stack: Stack, uid: str) -> set[str]:
    with directory(stack) as connection:
        connection.search(
            f"ou=groups,{ldap.BASE_DN}", f"(member={user_dn(uid)})", attributes=["cn"]
        )
        return {str(entry.cn) for entry in connection.entries}


def can_bind(stack: Stack, uid: str, password: str) -> bool:
    with bound(stack, user_dn(uid), password) as connection:
        return bool(connection.bound)


# --- the cloud, read through the AWS API ----------------------------------------------------


def aws(stack: Stack, service: Literal["ec2", "s3"]) -> Any:
    access_key_id, secret_access_key = cloud.credentials(stack.config)
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=cloud.endpoint_url(stack.config),
        region_name=cloud.REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
    )


def instance(stack: Stack, instance_id: str) -> dict[str, Any]:
    found = aws(stack, "ec2").describe_instances(InstanceIds=[instance_id])
    return dict(found["Reservations"][0]["Instances"][0])


def bucket_exists(stack: Stack, bucket: str) -> bool:
    names = {b["Name"] for b in aws(stack, "s3").list_buckets().get("Buckets", [])}
    return bucket in names


# --- the licence vendor and the MDM, as the receiver saw them --------------------------------


async def deliveries(stack: Stack, system: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=receiver.url(stack.config)) as client:
        answer = await client.get("/_test/deliveries")
    answer.raise_for_status()
    return [d for d in answer.json() if d["system"] == system]


async def set_fault(stack: Stack, **fault: Any) -> None:
    async with httpx.AsyncClient(base_url=receiver.url(stack.config)) as client:
        if fault:
            (await client.post("/_test/faults", json=fault)).raise_for_status()
        else:
            (await client.delete("/_test/faults")).raise_for_status()


async def free_units(platform: Platform, pool: str) -> set[str]:
    rows = await fetchval(
        platform.stack,
        "allocator",
        "SELECT array_agg(unit) FROM pool_units WHERE pool = $1 AND state = 'free'",
        pool,
    )
    return set(rows or [])


# --- one test per driver ----------------------------------------------------------------------


async def test_a_directory_account_is_created_changed_disabled_then_deleted(platform: Platform):
    stack, uid = platform.stack, unique("acct")
    request = await platform.completed(
        "directory_account",
        name=uid,
        given_name="Ada",
        family_name="Lovelace",
        department="platform",
    )
    resource_id = request["resource_id"]
    first = await platform.reveal(resource_id)
    assert first["username"] == uid
    assert can_bind(stack, uid, first["password"])
    assert groups_of(stack, uid) == {"staff", "tenant-default", "dept-platform", "role-engineer"}
    stored = entry_of(stack, uid)
    assert stored is not None and stored["sn"] == ["Lovelace"]
    assert [bytes(p)[:6] for p in stored["userPassword"]] == [b"{SSHA}"]

    # Modify: attributes and birthright groups follow the new role; the password rotates.
    changed = await platform.modify(resource_id, rotate=True, family_name="King", role="manager")
    assert changed["status"] == "completed", changed
    assert entry_of(stack, uid)["sn"] == ["King"]  # type: ignore[index]
    assert groups_of(stack, uid) == {"staff", "tenant-default", "dept-platform", "role-manager"}
    second = await platform.reveal(resource_id)
    assert second["password"] != first["password"]
    assert can_bind(stack, uid, second["password"])
    assert not can_bind(stack, uid, first["password"])
    resource = await platform.resource(resource_id)
    assert resource["parameters"]["family_name"] == "King"
    assert [r["operation"] for r in resource["requests"]] == ["provision", "modify"]

    # Deprovision disables at once (no login, no groups), deletes after the retention.
    removed = await platform.deprovision(resource_id)
    assert removed["status"] == "completed", removed
    assert not can_bind(stack, uid, second["password"])
    assert groups_of(stack, uid) == set()
    assert entry_of(stack, uid) is not None  # kept, disabled, for the retention period
    await eventually(
        lambda: asyncio.to_thread(lambda: entry_of(stack, uid) is None),
        what="the disabled entry deleted after its retention",
    )


async def test_a_vm_runs_with_its_tags_and_address_then_is_terminated(platform: Platform):
    stack, name = platform.stack, unique("vm")
    free_before = await free_units(platform, "subnet:lab")
    request = await platform.completed(
        "cloud_vm", name=name, vcpu=2, ram_gb=4, image="debian-12", subnet="lab"
    )
    outputs = (await platform.resource(request["resource_id"]))["outputs"]
    vm = instance(stack, str(outputs["instance_id"]))
    assert vm["State"]["Name"] == "running"
    assert vm["PrivateIpAddress"] == outputs["private_ip"]
    assert outputs["private_ip"] in free_before
    assert outputs["private_ip"] not in await free_units(platform, "subnet:lab")
    tags = {tag["Key"]: tag["Value"] for tag in vm["Tags"]}
    assert tags["provisioning:request-id"] == request["id"]
    assert vm["InstanceType"] == outputs["instance_type"]

    removed = await platform.deprovision(request["resource_id"])
    assert removed["status"] == "completed", removed
    state = instance(stack, str(outputs["instance_id"]))["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    assert outputs["private_ip"] in await free_units(platform, "subnet:lab")


async def test_a_bucket_is_encrypted_versioned_on_request_then_emptied_and_deleted(
    platform: Platform,
):
    stack, name = platform.stack, unique("bkt")
    request = await platform.completed("storage_bucket", name=name, size_gb=10)
    bucket = str((await platform.resource(request["resource_id"]))["outputs"]["bucket"])
    s3 = aws(stack, "s3")
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled"

    changed = await platform.modify(request["resource_id"], versioning=True)
    assert changed["status"] == "completed", changed
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b\n")
    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b,c\n")

    removed = await platform.deprovision(request["resource_id"])
    assert removed["status"] == "completed", removed
    assert not bucket_exists(stack, bucket)


async def test_a_licence_seat_is_registered_with_the_vendor_then_freed(platform: Platform):
    stack = platform.stack
    free_before = await free_units(platform, "licence:figma")
    request = await platform.completed(
        "software_license", name=unique("seat"), product="figma", assignee="alice"
    )
    resource_id = request["resource_id"]
    seat = (await platform.resource(resource_id))["outputs"]["seat"]
    assert seat in free_before and seat not in await free_units(platform, "licence:figma")
    # Seats are reused: what this assignment received is keyed by its id, the resource id.
    assigned = [
        d
        for d in await deliveries(stack, "licence-vendor")
        if d["body"].get("assignment_id") == resource_id
    ]
    assert [d["type"] for d in assigned if d["verdict"] == "applied"] == ["licence.assigned"]

    removed = await platform.deprovision(resource_id)
    assert removed["status"] == "completed", removed
    types = [
        d["type"]
        for d in await deliveries(stack, "licence-vendor")
        if d["body"].get("assignment_id") == resource_id and d["verdict"] == "applied"
    ]
    assert types == ["licence.assigned", "licence.released"]
    assert seat in await free_units(platform, "licence:figma")


async def test_a_laptop_is_enrolled_with_the_mdm_then_retired_and_wiped(platform: Platform):
    stack = platform.stack
    request = await platform.completed(
        "laptop", name=unique("lt"), model="thinkpad-x1", assignee="alice"
    )
    serial = (await platform.resource(request["resource_id"]))["outputs"]["serial"]
    removed = await platform.deprovision(request["resource_id"])
    assert removed["status"] == "completed", removed
    applied = [
        d
        for d in await deliveries(stack, "mdm")
        if d["body"].get("serial") == serial
        and d["body"].get("request_id") == request["id"]
        and d["verdict"] == "applied"
    ]
    assert [d["type"] for d in applied] == ["device.enrolled", "device.retired"]
    assert applied[1]["body"]["wipe"] is True


# --- failures end in a clean rollback ---------------------------------------------------------


async def test_a_vendor_answering_500_rolls_back_and_frees_the_seat(platform: Platform):
    free_before = await free_units(platform, "licence:figma")
    # Writes fail; reads answer, so the rollback can see there is nothing to release.
    await set_fault(platform.stack, system="licence-vendor", status=500, count=1000, method="POST")
    try:
        request = await platform.wait_terminal(
            (
                await platform.submit(
                    "software_license", name=unique("seat"), product="figma", assignee="bob"
                )
            )["id"],
            timeout_s=90,
        )
    finally:
        await set_fault(platform.stack)
    assert request["status"] == "rolled_back", request
    assert request["reasons"][0]["code"] == "target_failed"
    assert await free_units(platform, "licence:figma") == free_before
    applied = [
        d
        for d in await deliveries(platform.stack, "licence-vendor")
        if d["body"].get("assignee") == "bob" and d["verdict"] == "applied"
    ]
    assert applied == []


async def test_a_hanging_mdm_times_out_and_the_retry_completes(platform: Platform):
    await set_fault(platform.stack, system="mdm", delay_s=60, count=1)
    try:
        request = await platform.wait_terminal(
            (await platform.submit("laptop", name=unique("lt"), model="mbp-14", assignee="carol"))[
                "id"
            ],
            timeout_s=90,
        )
    finally:
        await set_fault(platform.stack)
    assert request["status"] == "completed", request
    await platform.deprovision(request["resource_id"])


async def test_a_directory_that_is_down_rolls_back_with_nothing_left(platform: Platform):
    stack, uid = platform.stack, unique("acct")
    ldap.stop(stack.config)
    try:
        submitted = await platform.submit(
            "directory_account", name=uid, given_name="Down", family_name="Time", department="web"
        )
        # The deployer retries, gives up, and the request turns to its compensation...
        await wait_for_status(platform, submitted["id"], "compensating")
    finally:
        ldap.start(stack.config)
    # ...which removes whatever could be left once the directory answers again.
    request = await platform.wait_terminal(submitted["id"], timeout_s=60)
    assert request["status"] == "rolled_back", request
    assert request["reasons"][0]["code"] == "target_failed"
    assert entry_of(stack, uid) is None


# --- drift ------------------------------------------------------------------------------------


async def test_drift_is_detected_when_an_entry_and_a_vm_vanish_and_remediation_restores(
    platform: Platform,
):
    stack, uid = platform.stack, unique("acct")
    account = await platform.completed(
        "directory_account", name=uid, given_name="Grace", family_name="Hopper", department="data"
    )
    vm = await platform.completed(
        "cloud_vm", name=unique("vm"), vcpu=1, ram_gb=1, image="ubuntu-24.04", subnet="lab"
    )
    instance_id = (await platform.resource(vm["resource_id"]))["outputs"]["instance_id"]

    with directory(stack) as connection:
        for group in groups_of(stack, uid):
            connection.modify(
                f"cn={group},ou=groups,{ldap.BASE_DN}",
                {"member": [(ldap3.MODIFY_DELETE, [user_dn(uid)])]},
            )
        assert connection.delete(user_dn(uid))
    aws(stack, "ec2").terminate_instances(InstanceIds=[instance_id])

    async def drift_of(resource_id: str) -> Any:
        return (await platform.resource(resource_id))["drift"]

    # On demand for one, by the periodic check for the other.
    answer = await platform.api.post(f"/v1/resources/{account['resource_id']}/verify")
    assert answer.status_code == 202, answer.text
    account_drift = await eventually(lambda: drift_of(account["resource_id"]), what="drift")
    vm_drift = await eventually(lambda: drift_of(vm["resource_id"]), what="vm drift")
    assert any("missing" in d for d in account_drift["differences"])
    assert vm_drift["differences"]
    history = (await platform.audit.get(f"/v1/audit/requests/{account['id']}")).json()
    assert "drift.detected" in [event["type"] for event in history["events"]]

    # Remediation puts the account back (with a new password, the old one went with it).
    answer = await platform.api.post(f"/v1/resources/{account['resource_id']}/remediate")
    assert answer.status_code == 202, answer.text
    fixed = await platform.wait_terminal(answer.json()["id"])
    assert fixed["status"] == "completed", fixed
    assert (await platform.resource(account["resource_id"]))["drift"] is None
    credentials = await platform.reveal(account["resource_id"])
    assert can_bind(stack, uid, credentials["password"])
    await platform.deprovision(account["resource_id"])


# --- offboarding ------------------------------------------------------------------------------


async def test_offboarding_removes_everything_a_person_holds(platform: Platform):
    stack, person = platform.stack, f"erin{uuid.uuid4().hex[:6]}"
    erin_key = await key_for(stack, name=person, tenant="default", roles=["requester"])
    account = await platform.completed(
        "directory_account",
        name=unique("acct"),
        given_name="Erin",
        family_name="Example",
        department="web",
        assignee=person,
    )
    seat = await platform.completed(
        "software_license", name=unique("seat"), product="figma", assignee=person
    )
    laptop = await platform.completed("laptop", name=unique("lt"), model="mbp-14", assignee=person)
    async with httpx.AsyncClient(
        base_url=stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {erin_key}"},
    ) as erin:
        answer = await erin.post(
            "/v1/requests",
            json={"catalog_item": "postgres_database", "parameters": {"name": unique("db")}},
        )
        assert answer.status_code == 202, answer.text
        refused = await erin.post(f"/v1/people/{person}/offboard")
        assert refused.status_code == 403
    database = await platform.wait_terminal(answer.json()["id"])
    assert database["status"] == "completed", database
    held = {r["resource_id"] for r in (account, seat, laptop, database)}
    listed = (await platform.api.get(f"/v1/people/{person}/resources")).json()
    assert set(listed["remaining"]) == held

    answer = await platform.api.post(f"/v1/people/{person}/offboard")
    assert answer.status_code == 202, answer.text
    filed = answer.json()["filed"]
    assert {f["resource_id"] for f in filed} == held
    assert filed[0]["catalog_item"] == "directory_account"
    for entry in filed:
        done = await platform.wait_terminal(entry["request_id"])
        assert done["status"] == "completed", done
    listed = (await platform.api.get(f"/v1/people/{person}/resources")).json()
    assert listed["remaining"] == []
    assert {r["state"] for r in listed["items"]} == {"retired"}
    uid = (await platform.resource(account["resource_id"]))["outputs"]["uid"]
    assert groups_of(stack, str(uid)) == set()
    mdm = [d["type"] for d in await deliveries(stack, "mdm") if d["body"].get("assignee") == person]
    assert mdm[-1] == "device.retired"
