"""Routes that read the audit record back as a story: a request's journey step by step, and
a resource as it stood at a past instant. Both are rebuilt from the records alone, and each
read is itself recorded."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from apikeys import ApiKeyBearer, Caller
from apikeys.authorization import Action, Forbidden, documented
from auditor import entries, read_access, repository, resource_state, timeline
from events import ServiceRuntime
from events.http import ProblemError, UtcMoment


def create_router(
    runtime: ServiceRuntime,
    authenticate: ApiKeyBearer,
    *,
    chain_key: bytes,
) -> APIRouter:
    router = APIRouter(prefix="/v1/audit")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/requests/{request_id}/timeline", openapi_extra=documented(Action.READ_AUDIT))
    async def request_timeline(request_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        """The request's steps in order: who did each, when its input arrived and when it
        finished, and what it waited for (approvers, stock, retries). An auditor or admin
        reads any request of the tenant; anyone else only one they asked for or that was
        done for them. Another tenant's request is not found."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            records = await repository.records_of_request(session, str(request_id))
        views = [entries.entry_of(record) for record in records]
        allowed = read_access.may_read(caller, timeline.requesters_of(views))
        query = {"request_id": str(request_id), "view": "timeline"}
        refused = bool(views) and not allowed
        await read_access.record(
            runtime, chain_key, caller, query, len(views) if allowed else 0, refused=refused
        )
        if not views:
            raise ProblemError(404, "No audit records for this request")
        if not allowed:
            raise Forbidden(Action.READ_AUDIT)
        return dict(jsonable_encoder(timeline.timeline_of(str(request_id), views)))

    @router.get("/resources/{resource_id}/state", openapi_extra=documented(Action.READ_AUDIT))
    async def resource_state_at(
        resource_id: uuid.UUID, caller: CallerDep, at: UtcMoment | None = None
    ) -> dict[str, Any]:
        """The resource as its records up to `at` (default: now) left it. An auditor or
        admin reads any resource of the tenant; anyone else only one they own or asked
        for. Not found: no record of it up to then, or another tenant's."""
        moment = at if at is not None else datetime.now(UTC)
        async with runtime.tenant_transaction(caller.tenant) as session:
            records = await repository.records_of_resource(session, str(resource_id), until=moment)
        views = [entries.entry_of(record) for record in records]
        state = resource_state.state_at(str(resource_id), moment, views)
        allowed = state is not None and read_access.may_read(
            caller, resource_state.people_of(state, views)
        )
        query = {"resource_id": str(resource_id), "at": moment.isoformat(), "view": "state"}
        refused = state is not None and not allowed
        await read_access.record(
            runtime, chain_key, caller, query, len(views) if allowed else 0, refused=refused
        )
        if state is None:
            raise ProblemError(404, "No audit records for this resource up to then")
        if not allowed:
            raise Forbidden(Action.READ_AUDIT)
        return dict(jsonable_encoder(state))

    return router
