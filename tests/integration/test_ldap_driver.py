"""The directory_account driver against a real OpenLDAP slapd started by devstack.ldap:
provisioning, drift, modification and rotation, disabling, removal, ownership, hostile names
and an unreachable directory."""

from __future__ import annotations

import contextlib
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPInvalidCredentialsResult, LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from tests.integration.isolated import isolated_config

from deployer.drivers.base import Placement, TargetConflict, TargetUnavailable, marker
from deployer.drivers.ldap import LdapDriver, LdapTarget
from devstack import ldap
from devstack.config import StackConfig
from devstack.proc import cmdline
from events import PermanentError

pytestmark = pytest.mark.integration

# Whole seconds: ldap3 refuses a fractional receive timeout.
TIMEOUT_S = 2
PEOPLE = f"ou=people,{ldap.BASE_DN}"
GROUPS = f"ou=groups,{ldap.BASE_DN}"


class Directory:
    """The directory as its administrator sees it: for setting up and checking behind the
    driver's back."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.url = ldap.url(config)
        self.admin_password = ldap.admin_password_file(config).read_text().strip()

    @contextlib.contextmanager
    def connection(self, user: str = ldap.ADMIN_DN, password: str | None = None) -> Iterator[Any]:
        server = ldap3.Server(self.url, connect_timeout=TIMEOUT_S, get_info=ldap3.NONE)
        connection = ldap3.Connection(
            server,
            user=user,
            password=self.admin_password if password is None else password,
            raise_exceptions=True,
            receive_timeout=TIMEOUT_S,
        )
        try:
            connection.bind()
            yield connection
        finally:
            connection.unbind()
            if connection.socket is not None:  # ldap3 keeps it after a failed open
                connection.socket.close()

    def entry(self, dn: str) -> dict[str, list[str]] | None:
        with self.connection() as admin:
            try:
                admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["*"])
            except LDAPNoSuchObjectResult:
                return None
            return {name: list(values) for name, values in admin.response[0]["attributes"].items()}

    def groups_of(self, dn: str) -> set[str]:
        with self.connection() as admin:
            admin.search(
                GROUPS, f"(member={escape_filter_chars(dn)})", ldap3.LEVEL, attributes=["cn"]
            )
            return {found["attributes"]["cn"][0] for found in admin.response}

    def members(self, group: str) -> list[str] | None:
        entry = self.entry(group_dn(group))
        return None if entry is None else entry["member"]

    def can_bind(self, dn: str, password: str) -> bool:
        try:
            with self.connection(dn, password):
                return True
        except LDAPInvalidCredentialsResult:
            return False

    def add(self, dn: str, object_classes: list[str], attributes: dict[str, Any]) -> None:
        with self.connection() as admin:
            admin.add(dn, object_classes, attributes)

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        with self.connection() as admin:
            admin.modify(dn, changes)

    def delete(self, dn: str) -> None:
        with self.connection() as admin:
            admin.delete(dn)


def person_dn(uid: str) -> str:
    return f"uid={escape_rdn(uid)},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={escape_rdn(name)},{GROUPS}"


def target(config: StackConfig, port: int | None = None) -> LdapTarget:
    return LdapTarget(
        url=f"ldap://127.0.0.1:{port}" if port else ldap.url(config),
        bind_dn=ldap.ADMIN_DN,
        bind_password_file=ldap.admin_password_file(config),
        base_dn=ldap.BASE_DN,
    )


def placement(request_id: uuid.UUID | None = None) -> Placement:
    return Placement(
        server_id="ldap",
        request_id=request_id or uuid.uuid4(),
        resource_id=uuid.uuid4(),
        tenant="acme",
        owner="alice",
    )


def account(uid: str, groups: list[str], **changes: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "given_name": "Ada",
        "family_name": "Lovelace",
        "department": "engineering",
        "groups": groups,
        "mail": f"{uid}@example.test",
    } | changes


def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = isolated_config(tmp_path_factory.mktemp("ldap-stack"), "ldap_port")
    try:
        ldap.start(config)
        yield config
    finally:
        ldap.stop(config)


@pytest.fixture
def directory(stack_config: StackConfig) -> Directory:
    return Directory(stack_config)


@pytest.fixture
def driver(stack_config: StackConfig) -> LdapDriver:
    return LdapDriver(target(stack_config), timeout_s=TIMEOUT_S)


def test_devstack_ldap_starts_once_keeps_the_password_private_and_listens_locally(
    stack_config: StackConfig, directory: Directory
) -> None:
    pid = ldap.running_pid(stack_config)
    assert pid is not None
    ldap.start(stack_config)
    assert ldap.running_pid(stack_config) == pid

    password_file = ldap.admin_password_file(stack_config)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    slapd_conf = (stack_config.ldap_dir / "slapd.conf").read_text()
    assert directory.admin_password not in slapd_conf
    assert "rootpw {SSHA}" in slapd_conf
    assert f"ldap://127.0.0.1:{stack_config.ldap_port}/" in cmdline(pid)

    for tree in (ldap.BASE_DN, PEOPLE, GROUPS):
        assert directory.entry(tree) is not None
    assert directory.can_bind(ldap.ADMIN_DN, directory.admin_password)
    assert not directory.can_bind(ldap.ADMIN_DN, "not-the-password")


async def test_apply_creates_the_entry_its_groups_and_a_hashed_password(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, groups = f"ada{run}", [f"staff-{run}", f"dept-{run}"]
    where, secret = placement(), f"first-{run}-Secret"

    deployed = await driver.apply(where, account(uid, groups), secret)

    dn = person_dn(uid)
    assert deployed.username == uid
    assert deployed.outputs == {"dn": dn, "uid": uid, "ldap_url": directory.url}
    entry = directory.entry(dn)
    assert entry is not None
    assert "inetOrgPerson" in entry["objectClass"]
    assert entry["cn"] == ["Ada Lovelace"]
    assert (entry["sn"], entry["givenName"]) == (["Lovelace"], ["Ada"])
    assert entry["departmentNumber"] == ["engineering"]
    assert entry["mail"] == [f"{uid}@example.test"]
    assert entry["description"] == [marker(where.request_id)]
    # slapd hashed it (password-hash {SSHA}): the plaintext was never stored.
    [stored] = entry["userPassword"]
    stored_text = stored.decode() if isinstance(stored, bytes) else stored
    assert stored_text.startswith("{SSHA}") and secret not in stored_text
    assert directory.groups_of(dn) == set(groups)
    assert directory.can_bind(dn, secret)
    assert not directory.can_bind(dn, secret + "x")
    assert await driver.verify(where, account(uid, groups), secret) == []


async def test_verify_reports_changes_made_behind_the_drivers_back(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, groups = f"bob{run}", [f"staff-{run}", f"dept-{run}"]
    where, secret, configuration = placement(), f"pw-{run}", account(f"bob{run}", groups)
    await driver.apply(where, configuration, secret)
    assert await driver.verify(where, configuration, secret) == []
    dn = person_dn(uid)

    directory.modify(dn, {"sn": [(ldap3.MODIFY_REPLACE, ["Byron"])]})
    directory.modify(dn, {"mail": [(ldap3.MODIFY_DELETE, [])]})
    directory.delete(group_dn(f"dept-{run}"))
    directory.add(group_dn(f"rogue-{run}"), ["groupOfNames"], {"cn": f"rogue-{run}", "member": dn})

    differences = await driver.verify(where, configuration, "not-the-password")
    assert sorted(differences) == sorted(
        [
            "sn is 'Byron', expected 'Lovelace'",
            f"mail is absent, expected '{uid}@example.test'",
            f"not a member of group 'dept-{run}'",
            f"a member of cn=rogue-{run},{GROUPS}, which is not configured",
            "cannot log in with its password",
        ]
    )

    await driver.apply(where, configuration, None)  # a remediation keeps the password
    assert await driver.verify(where, configuration, secret) == []
    assert directory.members(f"rogue-{run}") is None  # its last member left: it is gone

    directory.delete(dn)
    assert await driver.verify(where, configuration, secret) == ["missing"]


async def test_a_modify_converges_attributes_and_groups_and_rotates_the_password(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, where = f"cy{run}", placement()
    old, new = f"old-{run}", f"new-{run}"
    await driver.apply(where, account(uid, [f"a-{run}", f"b-{run}"]), old)

    changed = account(uid, [f"b-{run}", f"c-{run}"], family_name="Byron", mail=None)
    await driver.apply(where, changed, new)

    dn = person_dn(uid)
    entry = directory.entry(dn)
    assert entry is not None
    assert (entry["sn"], entry["cn"]) == (["Byron"], ["Ada Byron"])
    assert "mail" not in entry
    assert directory.groups_of(dn) == {f"b-{run}", f"c-{run}"}
    assert directory.members(f"a-{run}") is None
    assert not directory.can_bind(dn, old)
    assert directory.can_bind(dn, new)
    assert await driver.verify(where, changed, new) == []
    # The old configuration now reads as drift, one sentence per attribute.
    assert await driver.verify(where, account(uid, [f"b-{run}", f"c-{run}"]), new) == [
        "cn is 'Ada Byron', expected 'Ada Lovelace'",
        "sn is 'Byron', expected 'Lovelace'",
        f"mail is absent, expected '{uid}@example.test'",
    ]


async def test_disable_locks_the_entry_out_of_every_group_and_can_be_undone(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, where, secret = f"dee{run}", placement(), f"pw-{run}"
    groups = [f"staff-{run}", f"dept-{run}"]
    other = f"eve{run}"  # keeps the shared group alive
    await driver.apply(placement(), account(other, [f"staff-{run}"]), f"other-{run}")
    await driver.apply(where, account(uid, groups), secret)
    dn = person_dn(uid)

    await driver.disable(where, account(uid, groups))
    await driver.disable(where, account(uid, groups))

    entry = directory.entry(dn)
    assert entry is not None
    assert "userPassword" not in entry
    assert entry["employeeType"] == ["disabled"]
    assert entry["description"] == [marker(where.request_id)]
    assert not directory.can_bind(dn, secret)
    assert directory.groups_of(dn) == set()
    assert directory.members(f"staff-{run}") == [person_dn(other)]
    assert directory.members(f"dept-{run}") is None
    differences = await driver.verify(where, account(uid, groups), secret)
    assert "disabled" in differences
    assert "cannot log in with its password" in differences

    restored = f"restored-{run}"
    await driver.apply(where, account(uid, groups), restored)
    assert await driver.verify(where, account(uid, groups), restored) == []
    entry = directory.entry(dn)
    assert entry is not None and "employeeType" not in entry


async def test_apply_and_remove_are_idempotent(driver: LdapDriver, directory: Directory) -> None:
    run = unique()
    uid, where, secret = f"fay{run}", placement(), f"pw-{run}"
    shared, own = f"staff-{run}", f"own-{run}"
    other = f"gus{run}"
    await driver.apply(placement(), account(other, [shared]), f"other-{run}")

    first = await driver.apply(where, account(uid, [shared, own, own]), secret)
    again = await driver.apply(where, account(uid, [shared, own]), secret)
    assert first == again
    dn = person_dn(uid)
    assert directory.members(own) == [dn]
    assert sorted(directory.members(shared) or []) == sorted([person_dn(other), dn])
    assert directory.can_bind(dn, secret)

    await driver.remove(where, account(uid, [shared, own]))
    await driver.remove(where, account(uid, [shared, own]))
    await driver.disable(where, account(uid, [shared, own]))  # gone: nothing to do

    assert directory.entry(dn) is None
    assert directory.members(own) is None
    assert directory.members(shared) == [person_dn(other)]
    assert await driver.verify(where, account(uid, [shared, own]), secret) == ["missing"]


async def test_an_entry_this_request_did_not_create_is_a_conflict_and_left_alone(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, group = f"hal{run}", f"staff-{run}"
    dn = person_dn(uid)
    directory.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": "Hal", "sn": "Nine"})
    directory.add(group_dn(group), ["groupOfNames"], {"cn": group, "member": dn})
    secret = f"secret-{run}"

    for intruder in (placement(), placement()):
        with pytest.raises(TargetConflict) as raised:
            await driver.apply(intruder, account(uid, [group]), secret)
        assert secret not in str(raised.value)
        await driver.disable(intruder, account(uid, [group]))
        await driver.remove(intruder, account(uid, [group]))
        [difference] = await driver.verify(intruder, account(uid, [group]), secret)
        assert "did not create" in difference

    # Marked by another request of this platform: still not this request's to change.
    owner = placement()
    directory.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [marker(owner.request_id)])]})
    with pytest.raises(TargetConflict):
        await driver.apply(placement(), account(uid, [group]), secret)
    await driver.remove(placement(), account(uid, [group]))

    entry = directory.entry(dn)
    assert entry is not None and entry["sn"] == ["Nine"]
    assert directory.members(group) == [dn]

    # The same uid elsewhere in the tree would make a login by uid ambiguous.
    elsewhere = f"ivy{run}"
    directory.add(
        f"uid={elsewhere},{ldap.BASE_DN}",
        ["inetOrgPerson"],
        {"uid": elsewhere, "cn": "I", "sn": "V"},
    )
    with pytest.raises(TargetConflict):
        await driver.apply(placement(), account(elsewhere, [group]), secret)
    assert directory.entry(person_dn(elsewhere)) is None


async def test_hostile_names_and_values_stay_values(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    victim, staff = f"vic{run}", f"staff-{run}"
    await driver.apply(placement(), account(victim, [staff]), f"victim-{run}")
    hostile_values = {
        "given_name": "*)(objectClass=*",
        "family_name": "x,cn=admin",
        "department": "\\2a)(|(uid=*",
    }
    hostile_groups = ["*", f"{staff},ou=people", f"g{run})(cn=*", " #lead+trail; "]

    for uid in ("*", f"{run},cn=admin", f"{run})(|(uid=*", f' {run}#+<>;"\\= '):
        where, secret = placement(), f"pw-{run}"
        configuration = account(uid, hostile_groups, **hostile_values)
        deployed = await driver.apply(where, configuration, secret)

        dn = person_dn(uid)
        assert deployed.outputs["dn"] == dn
        entry = directory.entry(dn)
        assert entry is not None, uid
        assert entry["uid"] == [uid]
        assert entry["givenName"] == [hostile_values["given_name"]]
        assert entry["sn"] == [hostile_values["family_name"]]
        assert directory.groups_of(dn) == set(hostile_groups)
        assert directory.can_bind(dn, secret)
        assert await driver.verify(where, configuration, secret) == []

        await driver.remove(where, configuration)
        assert directory.entry(dn) is None

    # Nothing escaped its place: the admin, the tree and the bystander are as they were.
    assert directory.can_bind(ldap.ADMIN_DN, directory.admin_password)
    assert directory.entry(f"cn=admin,{ldap.BASE_DN}") is None
    assert directory.entry(f"cn={staff},ou=people,{ldap.BASE_DN}") is None
    assert directory.members(staff) == [person_dn(victim)]
    assert directory.entry(person_dn(victim)) is not None
    assert directory.can_bind(person_dn(victim), f"victim-{run}")


async def test_values_a_directory_cannot_hold_are_refused_as_permanent(
    driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    refused = [
        account(f"nul{run}\x00,cn=admin", []),
        account(f"nl{run}", [], given_name="Ada\ninjected: yes"),
        account(f"emptygroup{run}", [""]),
        account("", []),
        account(f"extra{run}", []) | {"userPassword": "plain"},
    ]
    for configuration in refused:
        with pytest.raises(PermanentError) as raised:
            await driver.apply(placement(), configuration, f"pw-{run}")
        assert not isinstance(raised.value, TargetConflict)
        assert f"pw-{run}" not in str(raised.value)
    with pytest.raises(PermanentError):
        await driver.apply(placement(), account(f"empty{run}", []), "")
    assert directory.entry(person_dn(f"empty{run}")) is None


async def test_a_directory_that_is_down_is_target_unavailable_within_the_timeout(
    stack_config: StackConfig, driver: LdapDriver, directory: Directory
) -> None:
    run = unique()
    uid, where, secret = f"jo{run}", placement(), f"pw-{run}"
    await driver.apply(where, account(uid, [f"staff-{run}"]), secret)

    ldap.stop(stack_config)
    try:
        for call in (
            driver.apply(where, account(uid, [f"staff-{run}"]), secret),
            driver.verify(where, account(uid, [f"staff-{run}"]), secret),
            driver.disable(where, account(uid, [f"staff-{run}"])),
            driver.remove(where, account(uid, [f"staff-{run}"])),
        ):
            started = time.monotonic()
            with pytest.raises(TargetUnavailable):
                await call
            assert time.monotonic() - started < TIMEOUT_S
    finally:
        ldap.start(stack_config)

    # It comes back with its data.
    assert await driver.verify(where, account(uid, [f"staff-{run}"]), secret) == []


async def test_a_directory_that_never_answers_is_target_unavailable_within_the_timeout(
    stack_config: StackConfig,
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshakes; nobody ever answers
    try:
        port = int(silent.getsockname()[1])
        driver = LdapDriver(target(stack_config, port), timeout_s=1)
        started = time.monotonic()
        with pytest.raises(TargetUnavailable):
            await driver.verify(placement(), account(f"kim{unique()}", []), None)
        assert time.monotonic() - started < 1 * 3 + 0.5
    finally:
        silent.close()


def test_the_driver_reads_its_bind_password_when_built(
    stack_config: StackConfig, tmp_path: Path
) -> None:
    missing = target(stack_config).model_copy(update={"bind_password_file": tmp_path / "none"})
    with pytest.raises(FileNotFoundError):
        LdapDriver(missing, timeout_s=TIMEOUT_S)
