"""What every route that reads the audit shares: who oversees a tenant's whole record, and
the record each read leaves in the chain."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from apikeys import Caller
from apikeys.authorization import NOBODY, Action, Subject, may, require
from apikeys.dependency import Check
from auditor import recording
from events import ServiceRuntime


def oversees(caller: Caller) -> bool:
    """An admin or an auditor reads the tenant's whole record; anyone else only theirs."""
    return may(caller, Action.READ_AUDIT_REPORTS)


def only_who_may(runtime: ServiceRuntime, chain_key: bytes, action: Action) -> Check:
    """A check to chain onto authentication (`authenticate.then(...)`): a caller the table
    does not allow `action` is refused (403), and the refusal is recorded."""

    async def check(request: Request, caller: Caller) -> None:
        if not may(caller, action):
            query = {"path": request.url.path, "action": action.value}
            await record(runtime, chain_key, caller, query, 0, refused=True)
            require(caller, action)

    return check


def subject_naming(caller: Caller, people: set[str]) -> Subject:
    """The records of a request or resource name several people (who asked, for whom, who
    owns it): for the authorization table, the caller is one of them or none."""
    return Subject(requester=caller.name) if caller.name in people else NOBODY


def may_read(caller: Caller, people: set[str]) -> bool:
    return may(caller, Action.READ_AUDIT, subject_naming(caller, people))


async def record(
    runtime: ServiceRuntime,
    chain_key: bytes,
    caller: Caller,
    query: dict[str, Any],
    returned: int,
    *,
    refused: bool = False,
) -> None:
    """Append who read what (and how many records they got), or was refused it, in a
    transaction of its own."""
    async with runtime.transaction() as session:
        await recording.append_read(
            session,
            chain_key,
            reader=caller.name,
            tenant=caller.tenant,
            query=query,
            returned=returned,
            refused=refused,
        )
