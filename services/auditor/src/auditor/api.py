"""Routes of the auditor: a request's history, and a check of the whole chain."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from apikeys import Caller
from auditor import chain, repository
from events import ServiceRuntime
from events.http import ProblemError


def create_router(
    runtime: ServiceRuntime, authenticate: Callable[[Request], Awaitable[Caller]]
) -> APIRouter:
    router = APIRouter(prefix="/v1/audit")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/requests/{request_id}")
    async def request_history(request_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        """A request of another tenant has no history here: row-level security hides it."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            records = await repository.records_of_request(session, str(request_id))
        if not records:
            raise ProblemError(404, "No audit records for this request")
        return {
            "request_id": str(request_id),
            "events": [
                {
                    "seq": r.seq,
                    "event_id": str(r.event_id),
                    "type": r.event_type,
                    "source": r.source,
                    "time": r.occurred_at.isoformat(),
                    "recorded_at": r.recorded_at.isoformat(),
                    "trace_id": r.trace_id,
                    "data": r.envelope.get("data", {}),
                    "hash": r.hash,
                }
                for r in records
            ],
        }

    @router.get("/verify")
    async def verify_chain(caller: CallerDep) -> dict[str, Any]:
        """The whole chain, every tenant's records: it answers only whether and where it
        breaks, and only to an admin or an auditor."""
        if not {"admin", "auditor"} & set(caller.roles):
            raise ProblemError(403, "Only an admin or an auditor may verify the chain")
        async with runtime.session_factory() as session:
            records = [record async for record in repository.chain(session)]
        verdict = chain.verify(records)
        answer: dict[str, Any] = {"ok": verdict.ok, "records": verdict.records}
        if not verdict.ok:
            answer.update(broken_at_seq=verdict.broken_at, reason=verdict.reason)
        return answer

    return router
