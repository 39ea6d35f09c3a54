"""What every route that reads the audit shares: who oversees a tenant's whole record, and
the record each read leaves in the chain."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from apikeys import Caller
from auditor import recording
from events import ServiceRuntime
from events.http import ProblemError

OVERSEERS = frozenset({"admin", "auditor"})


def oversees(caller: Caller) -> bool:
    """An admin or an auditor reads the tenant's whole record; anyone else only theirs."""
    return bool(OVERSEERS & set(caller.roles))


async def overseer_only(_: Request, caller: Caller) -> None:
    """A check to chain onto authentication (`authenticate.then(overseer_only)`)."""
    if not oversees(caller):
        raise ProblemError(403, "Only an admin or an auditor may do this")


async def record(
    runtime: ServiceRuntime,
    chain_key: bytes,
    caller: Caller,
    query: dict[str, Any],
    returned: int,
) -> None:
    """Append who read what (and how many records they got) in a transaction of its own."""
    async with runtime.transaction() as session:
        await recording.append_read(
            session,
            chain_key,
            reader=caller.name,
            tenant=caller.tenant,
            query=query,
            returned=returned,
        )
