"""The licence vendor's stand-in: seats of a product assigned to someone and released again,
`POST /licence-vendor/events` and `GET /licence-vendor/assignments/{id}`."""

from __future__ import annotations

import functools
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from devstack.receiver.calls import Name, Receiver, event_answer
from devstack.receiver.state import Outcome, conflict, revised

Assignments = dict[str, dict[str, Any]]


class LicenceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["licence.assigned", "licence.released"]
    assignment_id: Name
    product: Name
    seat: Name
    assignee: Name
    request_id: uuid.UUID


def router(receiver: Receiver) -> APIRouter:
    routes = APIRouter()
    assignments = receiver.state.assignments
    event = event_answer(LicenceEvent, functools.partial(apply_licence_event, assignments))

    @routes.post("/licence-vendor/events")
    async def licence_events(request: Request) -> JSONResponse:
        return await receiver.call(request, "licence-vendor", event, is_event=True)

    @routes.get("/licence-vendor/assignments/{assignment_id}")
    async def assignment(request: Request, assignment_id: str) -> JSONResponse:
        def read(_: bytes) -> Outcome:
            return read_assignment(assignments, assignment_id)

        return await receiver.call(request, "licence-vendor", read, is_event=False)

    return routes


def apply_licence_event(assignments: Assignments, event: LicenceEvent) -> Outcome:
    current = assignments.get(event.assignment_id)
    active = current if current is not None and current["state"] == "assigned" else None
    if active is not None and active["request_id"] != str(event.request_id):
        return conflict("the assignment belongs to another request")
    if event.type == "licence.released":
        if active is None:
            return Outcome(200, _released(event.assignment_id, current), "unchanged")
        return _change_assignment(assignments, active | {"state": "released"})
    holder = next(
        (
            other
            for other in assignments.values()
            if other["state"] == "assigned"
            and (other["product"], other["seat"]) == (event.product, event.seat)
            and other["assignment_id"] != event.assignment_id
        ),
        None,
    )
    if holder is not None:
        return conflict(f"seat {event.seat} of {event.product} is assigned already")
    wanted = event.model_dump(mode="json", exclude={"type"}) | {"state": "assigned"}
    return _change_assignment(assignments, wanted)


def read_assignment(assignments: Assignments, assignment_id: str) -> Outcome:
    record = assignments.get(assignment_id)
    if record is None or record["state"] != "assigned":
        revision = record["revision"] if record else 0
        return Outcome(404, {"detail": "no such assignment", "revision": revision}, "read")
    return Outcome(200, _public(record), "read")


def _change_assignment(assignments: Assignments, wanted: dict[str, Any]) -> Outcome:
    record, verdict = revised(assignments.get(wanted["assignment_id"]), wanted)
    assignments[record["assignment_id"]] = record
    if record["state"] == "released":
        return Outcome(200, _released(record["assignment_id"], record), verdict)
    return Outcome(200, _public(record), verdict)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "state"}


def _released(assignment_id: str, record: dict[str, Any] | None) -> dict[str, Any]:
    revision = record["revision"] if record else 0
    return {"assignment_id": assignment_id, "state": "released", "revision": revision}
