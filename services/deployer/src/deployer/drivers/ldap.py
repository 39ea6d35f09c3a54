"""The LDAP driver: a person's `directory_account` as an inetOrgPerson entry `uid=<uid>` under
the people OU, and its memberships in groupOfNames entries under the groups OU (OpenLDAP).

Ownership: the entry's `description` holds the mark of the request that created it, and only
that request changes, disables or removes it. A disabled entry has no `userPassword`, so no
simple bind succeeds, and carries `employeeType: disabled`; it can still be restored.

Passwords are set with the Password Modify extended operation (RFC 3062), so the directory
stores only its own hash of them: no plaintext password is ever part of an add or a modify.

Every DN and filter is built from hostile input: values go through `escape_rdn` or
`escape_filter_chars`, and DNs are compared by the directory (`entryDN`), never as strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import ldap3
from ldap3.core.exceptions import (
    LDAPAdminLimitExceededResult,
    LDAPAttributeOrValueExistsResult,
    LDAPBusyResult,
    LDAPCommunicationError,
    LDAPEntryAlreadyExistsResult,
    LDAPException,
    LDAPInappropriateAuthenticationResult,
    LDAPInvalidCredentialsResult,
    LDAPMaximumRetriesError,
    LDAPNoSuchAttributeResult,
    LDAPNoSuchObjectResult,
    LDAPObjectClassViolationResult,
    LDAPOperationResult,
    LDAPOtherResult,
    LDAPPasswordIsMandatoryError,
    LDAPResponseTimeoutError,
    LDAPTimeLimitExceededResult,
    LDAPUnavailableResult,
    LDAPUnwillingToPerformResult,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from deployer.drivers.base import Deployed, Placement, TargetConflict, TargetUnavailable, marker
from events import PermanentError

T = TypeVar("T")
# ldap3 has no type stubs: its connection is untyped.
Connection = Any

DISABLED = "disabled"
PERSON_CLASSES = ["top", "person", "organizationalPerson", "inetOrgPerson"]
GROUP_CLASSES = ["top", "groupOfNames"]
_READ_ATTRIBUTES = [
    "cn",
    "sn",
    "givenName",
    "departmentNumber",
    "mail",
    "description",
    "employeeType",
]

# What may pass: the directory is down, slow, busy or shutting down.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    LDAPCommunicationError,
    LDAPResponseTimeoutError,
    LDAPMaximumRetriesError,
    LDAPBusyResult,
    LDAPUnavailableResult,
    LDAPAdminLimitExceededResult,
    LDAPTimeLimitExceededResult,
    LDAPOtherResult,
)
# A person's bind refused because of the password (or its absence), not the directory.
_LOGIN_REFUSED: tuple[type[BaseException], ...] = (
    LDAPInvalidCredentialsResult,
    LDAPInappropriateAuthenticationResult,
    LDAPUnwillingToPerformResult,
    LDAPPasswordIsMandatoryError,
)

# Non-empty (a DN value cannot be) and free of control characters.
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class LdapTarget(BaseModel):
    """Where the directory listens, and how the deployer binds (its password in a file)."""

    model_config = ConfigDict(frozen=True)

    url: str
    bind_dn: str
    bind_password_file: Path
    base_dn: str
    people_ou: str = "ou=people"
    groups_ou: str = "ou=groups"


class DirectoryAccountConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    uid: Text
    given_name: Text
    family_name: Text
    department: Text
    groups: list[Text]
    mail: Text | None = None

    def attributes(self) -> dict[str, list[str]]:
        """The entry's attributes this configuration decides; an empty list: none."""
        return {
            "cn": [f"{self.given_name} {self.family_name}"],
            "sn": [self.family_name],
            "givenName": [self.given_name],
            "departmentNumber": [self.department],
            "mail": [self.mail] if self.mail else [],
        }


@dataclass(frozen=True)
class _Entry:
    attributes: dict[str, list[str]]

    def values(self, name: str) -> list[str]:
        # Attribute names are case-insensitive; `attributes` is keyed in lower case.
        return self.attributes.get(name.lower(), [])

    def is_ours(self, request_id: uuid.UUID) -> bool:
        return marker(request_id) in self.values("description")

    @property
    def disabled(self) -> bool:
        return DISABLED in (value.lower() for value in self.values("employeeType"))


class LdapDriver:
    needs_secret = True

    def __init__(self, target: LdapTarget, *, timeout_s: float) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._bind_password = target.bind_password_file.read_text().strip()
        self._people_dn = f"{target.people_ou},{target.base_dn}"
        self._groups_dn = f"{target.groups_ou},{target.base_dn}"

    async def close(self) -> None:
        pass  # every call opens its own connection and closes it before returning

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        account = _parse(configuration)
        if secret is not None and not secret:
            # ldap3 would leave the new password out, and slapd would then generate one.
            raise PermanentError("refusing to set an empty password")
        dn = self._person_dn(account.uid)
        await self._run(lambda connection: self._apply(connection, placement, account, secret))
        return Deployed(
            outputs={"dn": dn, "uid": account.uid, "ldap_url": self._target.url},
            username=account.uid,
        )

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        account = _parse(configuration)
        return await self._run(
            lambda connection: self._verify(connection, placement, account, secret)
        )

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        account = _parse(configuration)
        await self._run(lambda connection: self._disable(connection, placement, account))

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        account = _parse(configuration)
        await self._run(lambda connection: self._remove(connection, placement, account))

    # What each call does, over one connection bound as the deployer, in a worker thread.

    def _apply(
        self,
        connection: Connection,
        placement: Placement,
        account: DirectoryAccountConfiguration,
        secret: str | None,
    ) -> None:
        dn = self._person_dn(account.uid)
        entry = self._read(connection, dn)
        if entry is not None and not entry.is_ours(placement.request_id):
            raise TargetConflict(f"uid {account.uid!r} is taken in the directory by another entry")
        self._refuse_uid_elsewhere(connection, dn, account.uid)
        wanted = account.attributes()
        if entry is None:
            attributes = {name: values for name, values in wanted.items() if values}
            attributes |= {"uid": [account.uid], "description": [marker(placement.request_id)]}
            try:
                connection.add(dn, PERSON_CLASSES, attributes)
            except LDAPEntryAlreadyExistsResult as error:
                # Created meanwhile by another attempt: the retry reads it and decides.
                raise TargetUnavailable(f"uid {account.uid!r} was created meanwhile") from error
        else:
            changes = {
                name: [(ldap3.MODIFY_REPLACE, values)]
                for name, values in wanted.items()
                if entry.values(name) != values
            }
            if entry.disabled:
                changes["employeeType"] = [(ldap3.MODIFY_DELETE, [DISABLED])]
            if changes:
                connection.modify(dn, changes)
        if secret is not None:
            connection.extend.standard.modify_password(user=dn, new_password=secret)
        self._set_groups(connection, dn, account.groups)

    def _verify(
        self,
        connection: Connection,
        placement: Placement,
        account: DirectoryAccountConfiguration,
        secret: str | None,
    ) -> list[str]:
        dn = self._person_dn(account.uid)
        entry = self._read(connection, dn)
        if entry is None:
            return ["missing"]
        if not entry.is_ours(placement.request_id):
            return [f"uid {account.uid!r} is held by an entry this request did not create"]
        differences = [
            f"{name} is {_shown(entry.values(name))}, expected {_shown(values)}"
            for name, values in account.attributes().items()
            if entry.values(name) != values
        ]
        wanted_groups = list(dict.fromkeys(account.groups))
        differences += [
            f"not a member of group {name!r}"
            for name in wanted_groups
            if not self._is_member(connection, dn, name)
        ]
        differences += [
            f"a member of {group_dn}, which is not configured"
            for group_dn in self._other_groups(connection, dn, wanted_groups)
        ]
        if entry.disabled:
            differences.append("disabled")
        if secret is not None and not self._can_log_in(dn, secret):
            differences.append("cannot log in with its password")
        return differences

    def _disable(
        self, connection: Connection, placement: Placement, account: DirectoryAccountConfiguration
    ) -> None:
        dn = self._person_dn(account.uid)
        entry = self._read(connection, dn)
        if entry is None or not entry.is_ours(placement.request_id):
            return
        # One modify: the password goes and the mark comes together. Replacing with no value
        # deletes the attribute, and is no error when it is gone already.
        changes: dict[str, list[tuple[str, list[str]]]] = {
            "userPassword": [(ldap3.MODIFY_REPLACE, [])]
        }
        if not entry.disabled:
            changes["employeeType"] = [(ldap3.MODIFY_ADD, [DISABLED])]
        connection.modify(dn, changes)
        self._set_groups(connection, dn, [])

    def _remove(
        self, connection: Connection, placement: Placement, account: DirectoryAccountConfiguration
    ) -> None:
        dn = self._person_dn(account.uid)
        entry = self._read(connection, dn)
        if entry is None or not entry.is_ours(placement.request_id):
            return
        self._set_groups(connection, dn, [])
        with contextlib.suppress(LDAPNoSuchObjectResult):
            connection.delete(dn)

    # Entries and groups.

    def _person_dn(self, uid: str) -> str:
        return f"uid={escape_rdn(uid)},{self._people_dn}"

    def _group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self._groups_dn}"

    def _read(self, connection: Connection, dn: str) -> _Entry | None:
        try:
            connection.search(
                dn,
                "(objectClass=*)",
                ldap3.BASE,
                attributes=_READ_ATTRIBUTES,
            )
        except LDAPNoSuchObjectResult:
            return None
        if not connection.response:
            return None
        found = connection.response[0]["attributes"]
        return _Entry({name.lower(): list(values or []) for name, values in found.items()})

    def _refuse_uid_elsewhere(self, connection: Connection, dn: str, uid: str) -> None:
        """Two entries with one uid would make logins by uid ambiguous."""
        connection.search(
            self._target.base_dn,
            f"(&(uid={escape_filter_chars(uid)})(!(entryDN={escape_filter_chars(dn)})))",
            ldap3.SUBTREE,
            attributes=ldap3.NO_ATTRIBUTES,
            size_limit=1,
        )
        if connection.response:
            raise TargetConflict(f"uid {uid!r} is taken in the directory by another entry")

    def _set_groups(self, connection: Connection, dn: str, groups: Iterable[str]) -> None:
        """Make the entry a member of exactly `groups` among the groups under the groups OU."""
        wanted = list(dict.fromkeys(groups))
        for name in wanted:
            self._join(connection, dn, name)
        for group_dn in self._other_groups(connection, dn, wanted):
            self._leave(connection, dn, group_dn)

    def _join(self, connection: Connection, dn: str, name: str) -> None:
        group_dn = self._group_dn(name)
        try:
            connection.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [dn])]})
        except LDAPAttributeOrValueExistsResult:
            pass
        except LDAPNoSuchObjectResult:
            try:
                connection.add(group_dn, GROUP_CLASSES, {"cn": [name], "member": [dn]})
            except LDAPEntryAlreadyExistsResult:
                # Another account's apply created it meanwhile.
                with contextlib.suppress(LDAPAttributeOrValueExistsResult):
                    connection.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [dn])]})

    def _leave(self, connection: Connection, dn: str, group_dn: str) -> None:
        try:
            connection.modify(group_dn, {"member": [(ldap3.MODIFY_DELETE, [dn])]})
        except (LDAPNoSuchObjectResult, LDAPNoSuchAttributeResult):
            pass  # the group, or the membership, is gone already
        except LDAPObjectClassViolationResult:
            # A groupOfNames must have a member: the last one out deletes the group. A join
            # racing this delete is lost; the next drift check reports and repairs it.
            with contextlib.suppress(LDAPNoSuchObjectResult):
                connection.delete(group_dn)

    def _is_member(self, connection: Connection, dn: str, name: str) -> bool:
        try:
            connection.search(
                self._group_dn(name),
                f"(member={escape_filter_chars(dn)})",
                ldap3.BASE,
                attributes=ldap3.NO_ATTRIBUTES,
            )
        except LDAPNoSuchObjectResult:
            return False
        return bool(connection.response)

    def _other_groups(self, connection: Connection, dn: str, wanted: list[str]) -> list[str]:
        """The groups the entry is a member of besides `wanted`, as the directory spells them."""
        excluded = "".join(
            f"(entryDN={escape_filter_chars(self._group_dn(name))})" for name in wanted
        )
        query = f"(&(objectClass=groupOfNames)(member={escape_filter_chars(dn)})"
        query += f"(!(|{excluded})))" if excluded else ")"
        try:
            connection.search(self._groups_dn, query, ldap3.LEVEL, attributes=ldap3.NO_ATTRIBUTES)
        except LDAPNoSuchObjectResult:
            return []
        return [str(found["dn"]) for found in connection.response]

    def _can_log_in(self, dn: str, secret: str) -> bool:
        """Bind as the person will, over a connection of its own."""
        try:
            with self._bound(dn, secret):
                return True
        except _LOGIN_REFUSED:
            return False

    # Connections, time limits and errors.

    async def _run(self, work: Callable[[Connection], T]) -> T:
        # The blocking socket calls are each bounded by the connection's timeouts; the whole
        # call by this one. A call cut short may still finish in its thread: every step is
        # idempotent, so the retry converges either way.
        try:
            async with asyncio.timeout(self._timeout_s * 3):
                return await asyncio.to_thread(self._as_deployer, work)
        except (PermanentError, TargetUnavailable):
            raise
        except TimeoutError as error:
            raise TargetUnavailable(
                f"{self._target.url}: no answer within {self._timeout_s * 3:g} s"
            ) from error
        except _UNAVAILABLE as error:
            raise TargetUnavailable(f"{self._target.url}: {_describe(error)}") from error
        except LDAPException as error:
            raise PermanentError(f"{self._target.url}: {_describe(error)}") from error

    def _as_deployer(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._bound(self._target.bind_dn, self._bind_password) as connection:
                return work(connection)
        except LDAPInvalidCredentialsResult as error:
            # Only the deployer's own bind raises this here (a person's is caught): its
            # password file changed, which a restart of the deployer picks up.
            raise TargetUnavailable(
                f"{self._target.url}: the directory refused the bind as {self._target.bind_dn}"
            ) from error

    @contextlib.contextmanager
    def _bound(self, user: str, password: str) -> Iterator[Connection]:
        server = ldap3.Server(
            self._target.url, connect_timeout=self._timeout_s, get_info=ldap3.NONE
        )
        connection = ldap3.Connection(
            server,
            user=user,
            password=password,
            raise_exceptions=True,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float makes it fail.
            receive_timeout=max(1, math.ceil(self._timeout_s)),
        )
        try:
            connection.bind()
            yield connection
        finally:
            _close(connection)


def _close(connection: Connection) -> None:
    try:
        connection.unbind()
    except (LDAPException, OSError):
        pass  # the session broke: there is no one to say goodbye to
    finally:
        # ldap3 keeps, unclosed, the socket of a connection that failed to open.
        if connection.socket is not None:
            connection.socket.close()


def _parse(configuration: dict[str, Any]) -> DirectoryAccountConfiguration:
    try:
        return DirectoryAccountConfiguration.model_validate(configuration)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise PermanentError(f"invalid directory account: {problems}"[:500]) from error


def _shown(values: list[str]) -> str:
    if not values:
        return "absent"
    return repr(values[0]) if len(values) == 1 else repr(values)


def _describe(error: BaseException) -> str:
    """Name and reason of an error, from the directory's answer: never the request's values."""
    if isinstance(error, LDAPOperationResult):
        reason = " ".join(str(part) for part in (error.description, error.message) if part)
    else:
        reason = str(error)
    return f"{type(error).__name__}: {reason}"[:300]
