"""How the receiver answers a call to a system it plays: faults first, then the signature,
then, for an event, its webhook-id.

Every call to `/licence-vendor/...` or `/mdm/...` is verified under that system's secret (a bad
or missing signature, or a timestamp older than five minutes, is a 401). An event's webhook-id
is remembered with the answer it got: the same id again gets that answer without being applied
twice, the same id with another body a 409. Reads are verified but not remembered, since they
change nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints, ValidationError
from standardwebhooks.webhooks import Webhook

from devstack.receiver.faults import Fault, take_fault
from devstack.receiver.signing import SYSTEMS, signature_verdict
from devstack.receiver.state import MAX_DELIVERIES, Outcome, State

# A name in an event's body, as the systems accept it.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
]
EventT = TypeVar("EventT", bound=BaseModel)


class Receiver:
    def __init__(self, state: State, secrets: Mapping[str, str]) -> None:
        self.state = state
        self.webhooks = {system: Webhook(secrets[system]) for system in SYSTEMS}
        self.faults: list[Fault] = []
        # One call changes the state at a time; a held (delayed) call waits outside it.
        self.lock = asyncio.Lock()

    async def call(
        self,
        request: Request,
        system: str,
        answer: Callable[[bytes], Outcome],
        *,
        is_event: bool,
    ) -> JSONResponse:
        body = await request.body()
        delivery = _delivery(request, system, body)
        fault = take_fault(self.faults, system, request.method)
        if fault is not None and fault.delay_s is not None:
            await asyncio.sleep(fault.delay_s)
        elif fault is not None and fault.status is not None:
            return await self._answer(delivery, Outcome(fault.status, {"detail": "fault"}, "fault"))
        signature = signature_verdict(self.webhooks[system], body, request.headers)
        delivery["signature"] = signature
        if signature != "valid":
            return await self._answer(
                delivery, Outcome(401, {"detail": f"signature {signature}"}, "rejected")
            )
        async with self.lock:
            if not is_event:
                return await self._answer(delivery, answer(body))
            key = f"{system}:{delivery['webhook_id']}"
            digest = hashlib.sha256(request.url.path.encode() + b"\n" + body).hexdigest()
            first = self.state.seen.get(key)
            if first is not None and first["digest"] != digest:
                reused = Outcome(409, {"detail": "webhook-id reused for another body"}, "id-reused")
                return await self._answer(delivery, reused)
            if first is not None:
                replay = Outcome(first["status"], first["payload"], "replayed")
                return await self._answer(delivery, replay)
            outcome = answer(body)
            self.state.seen[key] = {
                "digest": digest,
                "status": outcome.status,
                "payload": outcome.payload,
            }
            return await self._answer(delivery, outcome)

    async def _answer(self, delivery: dict[str, Any], outcome: Outcome) -> JSONResponse:
        delivery |= {"verdict": outcome.verdict, "status": outcome.status}
        self.state.deliveries.append(delivery)
        del self.state.deliveries[:-MAX_DELIVERIES]
        await asyncio.to_thread(self.state.save)
        return JSONResponse(outcome.payload, status_code=outcome.status)


def _delivery(request: Request, system: str, body: bytes) -> dict[str, Any]:
    """The log entry of a call; its body always an object, so tests can filter on fields."""
    try:
        parsed: Any = json.loads(body) if body else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        parsed = {"unparsed": body[:1000].decode(errors="replace")}
    return {
        "system": system,
        "method": request.method,
        "path": request.url.path,
        "webhook_id": request.headers.get("webhook-id"),
        "type": parsed.get("type"),
        "body": parsed,
        "signature": None,
        "received_at": time.time(),
    }


def invalid(error: ValidationError) -> Outcome:
    detail = json.loads(error.json(include_url=False, include_input=False))
    return Outcome(422, {"detail": detail}, "invalid")


def event_answer(
    model: type[EventT], apply: Callable[[EventT], Outcome]
) -> Callable[[bytes], Outcome]:
    """The answer to an event's body: `apply` to it as `model`, or a 422 saying why it is not."""

    def answer(body: bytes) -> Outcome:
        try:
            event = model.model_validate_json(body)
        except ValidationError as error:
            return invalid(error)
        return apply(event)

    return answer
