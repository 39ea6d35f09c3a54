"""`GET /v1/requests/{id}/events`: a request's journal as Server-Sent Events, from the start
or after `Last-Event-ID`, then each new event as it is committed, until the request ends."""

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from apikeys import Caller
from apikeys.authorization import Action, documented
from events import ServiceRuntime
from request_api import repository as requests
from request_api.access import guarded_request
from request_api.webhooks import cloudevents, event_types, repository
from request_api.webhooks.listener import ActivitySignal

# Without a wake-up the journal is read again after this long anyway.
REREAD_AFTER_S = 5.0
PING_EVERY_S = 15.0
STREAM_RESPONSE: dict[str, Any] = {
    "description": "Server-Sent Events: `id` the journal position, `event` the type, `data` a "
    "CloudEvent (JSON). The stream ends after the request's final status.",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "example": 'id: 42\nevent: request.completed\ndata: {"specversion": "1.0", '
            '"id": "…", "type": "request.completed", "subject": "<request id>", …}\n\n',
        }
    },
}
# A journal position (bigint): digits only, short enough to fit.
LAST_EVENT_ID = re.compile(r"[0-9]{1,18}")


def create_router(
    runtime: ServiceRuntime,
    authenticate: Callable[[Request], Awaitable[Caller]],
    signal: ActivitySignal,
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["requests"])
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get(
        "/requests/{request_id}/events",
        response_class=EventSourceResponse,
        responses={200: STREAM_RESPONSE},
        openapi_extra=documented(Action.READ),
    )
    async def request_events(
        request_id: uuid.UUID,
        caller: CallerDep,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        """The request's events (CloudEvents as `data`, `id:` its journal position, so that a
        reconnect with `Last-Event-ID` resumes), then new ones as they happen; the stream
        ends after the request's final status. A comment line keeps an idle stream open."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            await guarded_request(session, request_id, caller, Action.READ)
        after = resume_after(last_event_id)
        return EventSourceResponse(
            _journal(runtime, signal, request_id, caller.tenant, after), ping=PING_EVERY_S
        )

    return router


def resume_after(last_event_id: str | None) -> int:
    """The journal position to resume after; anything but one of ours starts from the top."""
    if last_event_id and LAST_EVENT_ID.fullmatch(last_event_id):
        return int(last_event_id)
    return 0


async def _journal(
    runtime: ServiceRuntime,
    signal: ActivitySignal,
    request_id: uuid.UUID,
    tenant: str,
    after: int,
) -> AsyncIterator[ServerSentEvent]:
    with signal.watch(str(request_id)) as woken:
        while True:
            woken.clear()
            async with runtime.tenant_transaction(tenant) as session:
                # The status first: if it has ended, the journal read next shows the end too.
                request = await requests.get_request(session, request_id, tenant=tenant)
                rows = await repository.journal_of_request(
                    session, request_id, tenant=tenant, after_seq=after
                )
            for row in rows:
                after = row.seq
                yield ServerSentEvent(
                    data=json.dumps(cloudevents.cloud_event(row)), event=row.type, id=str(row.seq)
                )
                if row.type in event_types.TERMINAL:
                    return
            ended = request is None or f"request.{request.status}" in event_types.TERMINAL
            if not rows and ended:
                # Resumed after the final event: nothing more will come.
                return
            if not rows:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REREAD_AFTER_S):
                        await woken.wait()
