"""The local stand-in for the licence vendor and the MDM: a small HTTP app that takes signed
Standard Webhooks calls, keeps its state in JSON files, and lets tests inject faults.

Every call to `/licence-vendor/...` or `/mdm/...` is verified under that system's secret (a bad
or missing signature, or a timestamp older than five minutes, is a 401). An event's webhook-id
is remembered with the answer it got: the same id again gets that answer without being applied
twice, the same id with another body a 409. Reads are verified but not remembered, since they
change nothing. Revisions count the changes to each assignment or device, so a client can tell
a state it has seen from one it has not.

The unsigned `/_test/...` routes list every delivery and make a system fail or hang.

It also plays an identity provider for OAuth2 access tokens: `/idp/jwks.json` serves the public
keys whose private half devstack keeps in its secrets (tests and developers sign with it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apikeys import bootstrap
from devstack.config import StackConfig
from devstack.proc import live_pid, start_process, stop_pid_files, wait_until_ready

SYSTEMS = ("licence-vendor", "mdm")
System = Literal["licence-vendor", "mdm"]
TOLERANCE_S = 5 * 60  # as the reference library's verify
MAX_DELIVERIES = 10_000  # the log is for tests and demos, not an archive
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
FACTORY = "devstack.receiver:create_app_from_env"

# ---------------------------------------------------------------------------------------------
# The wire: bodies the systems accept.

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
]


class LicenceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["licence.assigned", "licence.released"]
    assignment_id: Name
    product: Name
    seat: Name
    assignee: Name
    request_id: uuid.UUID


class DeviceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["device.enrolled", "device.retired"]
    serial: Name
    model: Name
    kind: Literal["laptop", "phone"]
    assignee: Name
    request_id: uuid.UUID
    wipe: bool = False


class Fault(BaseModel):
    """Answer the next `count` calls to `system` (of `method`, if given) with `status`, or
    hold them for `delay_s` before answering normally."""

    model_config = ConfigDict(extra="forbid")

    system: System
    status: int | None = Field(default=None, ge=400, le=599)
    delay_s: float | None = Field(default=None, gt=0, le=300)
    count: int = Field(default=1, ge=1)
    method: Literal["GET", "POST"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Fault:
        if (self.status is None) == (self.delay_s is None):
            raise ValueError("give either status or delay_s")
        return self


# ---------------------------------------------------------------------------------------------
# State: what each system holds, persisted after every call.


@dataclass
class Outcome:
    status: int
    payload: dict[str, Any]
    verdict: str


@dataclass
class State:
    path: Path
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "<system>:<webhook-id>" -> {"digest", "status", "payload"}: the first answer to an event.
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, data["assignments"], data["devices"], data["seen"], data["deliveries"])

    def save(self) -> None:
        """Atomically: a crash leaves the previous file or the new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "assignments": self.assignments,
            "devices": self.devices,
            "seen": self.seen,
            "deliveries": self.deliveries[-MAX_DELIVERIES:],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def licence_event(self, event: LicenceEvent) -> Outcome:
        current = self.assignments.get(event.assignment_id)
        active = current if current is not None and current["state"] == "assigned" else None
        if active is not None and active["request_id"] != str(event.request_id):
            return _conflict("the assignment belongs to another request")
        if event.type == "licence.released":
            if active is None:
                return Outcome(200, _released(event.assignment_id, current), "unchanged")
            return self._change_assignment(active | {"state": "released"})
        holder = next(
            (
                other
                for other in self.assignments.values()
                if other["state"] == "assigned"
                and (other["product"], other["seat"]) == (event.product, event.seat)
                and other["assignment_id"] != event.assignment_id
            ),
            None,
        )
        if holder is not None:
            return _conflict(f"seat {event.seat} of {event.product} is assigned already")
        wanted = event.model_dump(mode="json", exclude={"type"}) | {"state": "assigned"}
        return self._change_assignment(wanted)

    def device_event(self, event: DeviceEvent) -> Outcome:
        current = self.devices.get(event.serial)
        enrolled = current if current is not None and current["state"] == "enrolled" else None
        if enrolled is not None and enrolled["request_id"] != str(event.request_id):
            return _conflict(f"device {event.serial} is enrolled by another request")
        if event.type == "device.enrolled":
            wanted = event.model_dump(mode="json", exclude={"type", "wipe"})
            return self._change_device(wanted | {"state": "enrolled", "wiped": False})
        if current is None:
            return Outcome(404, {"detail": f"no device {event.serial}", "revision": 0}, "unknown")
        if enrolled is None:
            # Retired already: a wipe asked for later still happens, nothing else changes.
            wiped = bool(current["wiped"]) or event.wipe
            return self._change_device(current | {"wiped": wiped})
        return self._change_device(enrolled | {"state": "retired", "wiped": event.wipe})

    def _change_assignment(self, wanted: dict[str, Any]) -> Outcome:
        record, verdict = _revised(self.assignments.get(wanted["assignment_id"]), wanted)
        self.assignments[record["assignment_id"]] = record
        if record["state"] == "released":
            return Outcome(200, _released(record["assignment_id"], record), verdict)
        return Outcome(200, _public(record), verdict)

    def _change_device(self, wanted: dict[str, Any]) -> Outcome:
        record, verdict = _revised(self.devices.get(wanted["serial"]), wanted)
        self.devices[record["serial"]] = record
        return Outcome(200, dict(record), verdict)

    def assignment(self, assignment_id: str) -> Outcome:
        record = self.assignments.get(assignment_id)
        if record is None or record["state"] != "assigned":
            revision = record["revision"] if record else 0
            return Outcome(404, {"detail": "no such assignment", "revision": revision}, "read")
        return Outcome(200, _public(record), "read")

    def device(self, serial: str) -> Outcome:
        record = self.devices.get(serial)
        if record is None:
            return Outcome(404, {"detail": "no such device", "revision": 0}, "read")
        return Outcome(200, dict(record), "read")


def _revised(current: dict[str, Any] | None, wanted: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The record with `wanted` applied; its revision moves only when something changed."""
    revision = current["revision"] if current else 0
    wanted = {key: value for key, value in wanted.items() if key != "revision"}
    if current is not None and current == wanted | {"revision": revision}:
        return current, "unchanged"
    return wanted | {"revision": revision + 1}, "applied"


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "state"}


def _released(assignment_id: str, record: dict[str, Any] | None) -> dict[str, Any]:
    revision = record["revision"] if record else 0
    return {"assignment_id": assignment_id, "state": "released", "revision": revision}


def _conflict(detail: str) -> Outcome:
    return Outcome(409, {"detail": detail}, "conflict")


# ---------------------------------------------------------------------------------------------
# The app.


def signature_verdict(webhook: Webhook, body: bytes, headers: Mapping[str, str]) -> str:
    """Whether a call is signed under `webhook`'s secret: "valid", or why not ("missing",
    "stale" when sent more than five minutes away from now, "invalid")."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signature):
        return "missing"
    try:
        sent = float(timestamp)
    except ValueError:
        return "invalid"
    if not math.isfinite(sent):
        return "invalid"
    if abs(time.time() - sent) > TOLERANCE_S:
        return "stale"
    signed = {"webhook-id": webhook_id, "webhook-timestamp": timestamp}
    try:
        webhook.verify(body, signed | {"webhook-signature": signature}, json_parse=False)
    except (WebhookVerificationError, ValueError):  # ValueError: malformed base64 or UTF-8
        return "invalid"
    return "valid"


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
        fault = self._take_fault(system, request.method)
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

    def _take_fault(self, system: str, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.system == system and fault.method in (None, method):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None


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


def _invalid(error: ValidationError) -> Outcome:
    detail = json.loads(error.json(include_url=False, include_input=False))
    return Outcome(422, {"detail": detail}, "invalid")


def create_app(
    state_dir: Path, secrets: Mapping[str, str], jwks_file: Path | None = None
) -> FastAPI:
    """The receiver keeping its state in `state_dir`; `secrets` by system (whsec_...); the
    identity provider's public keys in `jwks_file`."""
    receiver = Receiver(State.load(state_dir / "state.json"), secrets)
    app = FastAPI(title="webhook receiver (licence vendor, MDM)")

    def licence_event(body: bytes) -> Outcome:
        try:
            event = LicenceEvent.model_validate_json(body)
        except ValidationError as error:
            return _invalid(error)
        return receiver.state.licence_event(event)

    def device_event(body: bytes) -> Outcome:
        try:
            event = DeviceEvent.model_validate_json(body)
        except ValidationError as error:
            return _invalid(error)
        return receiver.state.device_event(event)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/licence-vendor/events")
    async def licence_events(request: Request) -> JSONResponse:
        return await receiver.call(request, "licence-vendor", licence_event, is_event=True)

    @app.get("/licence-vendor/assignments/{assignment_id}")
    async def assignment(request: Request, assignment_id: str) -> JSONResponse:
        def read(_: bytes) -> Outcome:
            return receiver.state.assignment(assignment_id)

        return await receiver.call(request, "licence-vendor", read, is_event=False)

    @app.post("/mdm/events")
    async def mdm_events(request: Request) -> JSONResponse:
        return await receiver.call(request, "mdm", device_event, is_event=True)

    @app.get("/mdm/devices/{serial}")
    async def device(request: Request, serial: str) -> JSONResponse:
        def read(_: bytes) -> Outcome:
            return receiver.state.device(serial)

        return await receiver.call(request, "mdm", read, is_event=False)

    @app.get("/idp/jwks.json")
    async def jwks() -> JSONResponse:
        # Read at every call, so a new key pair is served without a restart.
        keys = await asyncio.to_thread(_read_jwks, jwks_file)
        if keys is None:
            return JSONResponse({"detail": "no identity provider keys"}, status_code=404)
        return JSONResponse(keys)

    @app.get("/_test/deliveries")
    async def deliveries() -> list[dict[str, Any]]:
        return receiver.state.deliveries

    @app.post("/_test/faults")
    async def add_fault(fault: Fault) -> dict[str, int]:
        receiver.faults.append(fault)
        return {"pending": len(receiver.faults)}

    @app.delete("/_test/faults")
    async def clear_faults() -> dict[str, int]:
        receiver.faults.clear()
        return {"pending": 0}

    return app


def _read_jwks(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory`: RECEIVER_STATE_DIR, RECEIVER_SECRET_FILES as JSON
    {system: path} (paths, so the secrets stay out of the environment and the command line),
    and RECEIVER_JWKS_FILE if it plays the identity provider."""
    state_dir = Path(os.environ["RECEIVER_STATE_DIR"])
    files = json.loads(os.environ["RECEIVER_SECRET_FILES"])
    secrets = {system: Path(files[system]).read_text().strip() for system in SYSTEMS}
    jwks_file = os.environ.get("RECEIVER_JWKS_FILE")
    return create_app(state_dir, secrets, Path(jwks_file) if jwks_file else None)


# ---------------------------------------------------------------------------------------------
# The process, for `make up` and tests.


def secret_file(config: StackConfig, system: str) -> Path:
    """The file holding `system`'s signing secret, created (once, mode 600) if missing."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown webhook system {system!r}")
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    path = config.secrets_dir / f"webhook-{system}.secret"
    if not path.exists():
        bootstrap.write_private(path, "whsec_" + base64.b64encode(os.urandom(32)).decode())
    return path


def url(config: StackConfig) -> str:
    return f"http://{endpoint(config)}"


def endpoint(config: StackConfig) -> str:
    return f"127.0.0.1:{config.receiver_port}"


def running_pid(config: StackConfig) -> int | None:
    return live_pid(config.pid_file("receiver"), FACTORY)


def start(config: StackConfig) -> str:
    """Start the receiver unless it runs, wait until it answers, and return its URL."""
    log = config.log_file("receiver")
    with httpx.Client(timeout=2.0) as client:

        def ready() -> bool:
            try:
                return client.get(f"{url(config)}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        pid = running_pid(config)
        if pid is None:
            files = {system: str(secret_file(config, system)) for system in SYSTEMS}
            env = {
                **os.environ,
                "RECEIVER_STATE_DIR": str(config.receiver_dir),
                "RECEIVER_SECRET_FILES": json.dumps(files),
                "RECEIVER_JWKS_FILE": str(config.idp_jwks_file),
                "PYTHONUNBUFFERED": "1",
            }
            start_process(
                "receiver",
                _command(config),
                log=log,
                pid_file=config.pid_file("receiver"),
                cwd=config.repo,
                env=env,
                ready=ready,
                timeout=READY_TIMEOUT,
            )
        else:
            wait_until_ready("receiver", pid, log=log, ready=ready, timeout=READY_TIMEOUT)
    return url(config)


def stop(config: StackConfig) -> None:
    stop_pid_files([(config.pid_file("receiver"), FACTORY)], timeout=STOP_TIMEOUT)


def _command(config: StackConfig) -> list[str]:
    beside_python = Path(sys.executable).parent / "uvicorn"
    uvicorn = beside_python if beside_python.exists() else config.repo / ".venv" / "bin" / "uvicorn"
    return [
        str(uvicorn),
        "--factory",
        FACTORY,
        "--host",
        "127.0.0.1",
        "--port",
        str(config.receiver_port),
        "--no-access-log",
        # A call held by a delay fault must not hold up a stop.
        "--timeout-graceful-shutdown",
        "1",
    ]
