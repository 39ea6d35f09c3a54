"""The MDM's stand-in: laptops and phones enrolled for someone and retired (wiped on request),
`POST /mdm/events` and `GET /mdm/devices/{serial}`."""

from __future__ import annotations

import functools
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from devstack.receiver.calls import Name, Receiver, event_answer
from devstack.receiver.state import Outcome, conflict, revised

Devices = dict[str, dict[str, Any]]


class DeviceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["device.enrolled", "device.retired"]
    serial: Name
    model: Name
    kind: Literal["laptop", "phone"]
    assignee: Name
    request_id: uuid.UUID
    wipe: bool = False


def router(receiver: Receiver) -> APIRouter:
    routes = APIRouter()
    devices = receiver.state.devices
    event = event_answer(DeviceEvent, functools.partial(apply_device_event, devices))

    @routes.post("/mdm/events")
    async def mdm_events(request: Request) -> JSONResponse:
        return await receiver.call(request, "mdm", event, is_event=True)

    @routes.get("/mdm/devices/{serial}")
    async def device(request: Request, serial: str) -> JSONResponse:
        def read(_: bytes) -> Outcome:
            return read_device(devices, serial)

        return await receiver.call(request, "mdm", read, is_event=False)

    return routes


def apply_device_event(devices: Devices, event: DeviceEvent) -> Outcome:
    current = devices.get(event.serial)
    enrolled = current if current is not None and current["state"] == "enrolled" else None
    if enrolled is not None and enrolled["request_id"] != str(event.request_id):
        return conflict(f"device {event.serial} is enrolled by another request")
    if event.type == "device.enrolled":
        wanted = event.model_dump(mode="json", exclude={"type", "wipe"})
        return _change_device(devices, wanted | {"state": "enrolled", "wiped": False})
    if current is None:
        return Outcome(404, {"detail": f"no device {event.serial}", "revision": 0}, "unknown")
    if enrolled is None:
        # Retired already: a wipe asked for later still happens, nothing else changes.
        wiped = bool(current["wiped"]) or event.wipe
        return _change_device(devices, current | {"wiped": wiped})
    return _change_device(devices, enrolled | {"state": "retired", "wiped": event.wipe})


def read_device(devices: Devices, serial: str) -> Outcome:
    record = devices.get(serial)
    if record is None:
        return Outcome(404, {"detail": "no such device", "revision": 0}, "read")
    return Outcome(200, dict(record), "read")


def _change_device(devices: Devices, wanted: dict[str, Any]) -> Outcome:
    record, verdict = revised(devices.get(wanted["serial"]), wanted)
    devices[record["serial"]] = record
    return Outcome(200, dict(record), verdict)
