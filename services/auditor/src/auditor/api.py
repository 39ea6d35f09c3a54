"""Routes of the auditor: a request's history, and a check of the whole chain."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from apikeys import Caller
from auditor import chain, repository
from events import ServiceRuntime


def create_router(
    runtime: ServiceRuntime, authenticate: Callable[[Request], Awaitable[Caller]]
) -> APIRouter:
    router = APIRouter(prefix="/v1/audit", dependencies=[Depends(authenticate)])

    @router.get("/requests/{request_id}")
    async def request_history(request_id: uuid.UUID) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            records = await repository.records_of_request(session, str(request_id))
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
    async def verify_chain() -> dict[str, Any]:
        async with runtime.session_factory() as session:
            records = [record async for record in repository.chain(session)]
        verdict = chain.verify(records)
        answer: dict[str, Any] = {"ok": verdict.ok, "records": verdict.records}
        if not verdict.ok:
            answer.update(broken_at_seq=verdict.broken_at, reason=verdict.reason)
        return answer

    return router
