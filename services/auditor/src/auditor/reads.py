"""What every route that reads the audit shares: who oversees a tenant's whole record, and
the record each read leaves in the chain."""

# No `from __future__ import annotations`: FastAPI must see the dependency in the signature.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from apikeys import Caller
from auditor import recording
from events import ServiceRuntime
from events.http import ProblemError

OVERSEERS = frozenset({"admin", "auditor"})


def oversees(caller: Caller) -> bool:
    """An admin or an auditor reads the tenant's whole record; anyone else only theirs."""
    return bool(OVERSEERS & set(caller.roles))


def overseer_only(
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency: the authenticated caller, if they oversee the tenant's record."""

    async def overseer(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not oversees(caller):
            raise ProblemError(403, "Only an admin or an auditor may do this")
        return caller

    return overseer


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
