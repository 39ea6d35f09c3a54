"""The licence vendor's driver and the MDM's: signed Standard Webhooks calls over HTTP.

Writes are events (`POST {url}/events`), reads signed GETs; the request that created a seat
assignment or a device enrolment is named in it (`request_id`), and only that request changes
or removes it.

Every write reads first, so what is as wanted already is not sent again. An event's webhook-id
is derived from the event and from the revision of the record it was read at: a retry whose
first answer was lost carries the same id (the system applies it once and answers it again),
while a later change, or a repair after drift, reads a new revision and gets a new id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from standardwebhooks.webhooks import Webhook

from deployer.drivers.base import Deployed, Placement, TargetConflict, TargetUnavailable
from events import PermanentError, outbound, tracing
from events.outbound import AllowList

logger = logging.getLogger(__name__)

WEBHOOK_IDS = uuid.UUID("6f1c2a9e-5b8d-4c47-9e0a-2d7b3f4e8a51")

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
]


class WebhookTarget(BaseModel):
    """Where a system listens (its base URL, e.g. http://127.0.0.1:8090/mdm) and the file
    holding the secret its calls are signed with."""

    model_config = ConfigDict(frozen=True)

    url: str
    secret_file: Path


class LicenceConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product: Name
    seat: Name
    assignee: Name


class DeviceConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["laptop", "phone"]
    model: Name
    serial: Name
    assignee: Name


@dataclass(frozen=True)
class Observed:
    """A record as the system holds it (None: it holds none) and its revision."""

    record: dict[str, Any] | None
    revision: int


class SignedClient:
    """One system's endpoint: every call signed, bounded by `timeout_s` as a whole, and made
    through the outbound guard (a private address must be in the deployment's allow-list)."""

    def __init__(
        self,
        system: str,
        target: WebhookTarget,
        *,
        timeout_s: float,
        allow_list: AllowList,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.system = system
        self._webhook = Webhook(target.secret_file.read_text().strip())
        self._timeout_s = timeout_s
        self._client = outbound.guarded_client(
            allow_list, base_url=target.url.rstrip("/"), timeout_s=timeout_s
        )
        if tracer_provider is not None:
            tracing.instrument_http_client(self._client, tracer_provider)

    async def close(self) -> None:
        await self._client.aclose()

    async def read(self, path: str) -> Observed:
        # A read changes nothing: a fresh id every time, so no answer is ever a replay.
        response = await self._call("GET", path, f"msg_{uuid.uuid4().hex}", "")
        if response.status_code == 404:
            # The system's "none here" names a revision; any other 404 is a wrong URL.
            revision = _body(response).get("revision")
            if isinstance(revision, int):
                return Observed(None, revision)
        self._raise_for(response, f"GET {path}")
        record = self._json(response)
        return Observed(record, int(record.get("revision", 0)))

    async def send(self, event: dict[str, Any], *, subject: str, read_at: int) -> dict[str, Any]:
        """Deliver `event` about `subject` (an assignment, a device) read at revision `read_at`."""
        data = json.dumps(event, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(data.encode()).hexdigest()
        name = f"{self.system}|{event['type']}|{subject}|{read_at}|{digest}"
        webhook_id = f"msg_{uuid.uuid5(WEBHOOK_IDS, name).hex}"
        response = await self._call("POST", "/events", webhook_id, data)
        self._raise_for(response, str(event["type"]))
        return self._json(response)

    async def _call(self, method: str, path: str, webhook_id: str, data: str) -> httpx.Response:
        # A fresh timestamp and signature per attempt: the system refuses stale ones.
        sent_at = datetime.now(UTC)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._webhook.sign(webhook_id, sent_at, data),
        }
        if data:
            headers["content-type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._client.request(
                    method, path, content=data.encode(), headers=headers
                )
        except (httpx.HTTPError, TimeoutError) as error:
            # The class of failure only: the error's text names addresses and ports.
            raise TargetUnavailable(
                f"{self.system}: {method} {path}: {outbound.error_class(error)}"
            ) from error

    def _raise_for(self, response: httpx.Response, action: str) -> None:
        if response.is_success:
            return
        status = response.status_code
        problem = f"{self.system} answered {status} to {action}: {_reason(response)}"
        if status == 429 or status >= 500:
            raise TargetUnavailable(problem)
        if status == 409:
            raise TargetConflict(problem)
        raise PermanentError(problem)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        found = _body(response)
        if not found:
            raise TargetUnavailable(f"{self.system} answered {response.status_code} without JSON")
        return found


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object answered, or {} when the answer is anything else."""
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _reason(response: httpx.Response) -> str:
    detail = _body(response).get("detail") or response.text
    text = detail if isinstance(detail, str) else json.dumps(detail)
    text = text or response.reason_phrase
    return text if len(text) <= 200 else text[:199] + "…"


ConfigurationModel = TypeVar("ConfigurationModel", bound=BaseModel)


def _parse(model: type[ConfigurationModel], configuration: dict[str, Any]) -> ConfigurationModel:
    try:
        return model.model_validate(configuration)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise PermanentError(f"invalid {model.__name__}: {problems}"[:500]) from error


def _differences(record: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [
        f"{key} is {record.get(key)!r}, expected {value!r}"
        for key, value in wanted.items()
        if record.get(key) != value
    ]


def _ours(record: dict[str, Any], placement: Placement) -> bool:
    return bool(record.get("request_id") == str(placement.request_id))


class LicenceDriver:
    """Licence seats, assigned with the vendor (`licence.assigned`) and freed on deprovision
    (`licence.released`): a freed seat keeps nothing worth a retention period."""

    needs_secret = False

    def __init__(
        self,
        target: WebhookTarget,
        *,
        timeout_s: float,
        allow_list: AllowList,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._vendor = SignedClient(
            "licence-vendor",
            target,
            timeout_s=timeout_s,
            allow_list=allow_list,
            tracer_provider=tracer_provider,
        )

    async def close(self) -> None:
        await self._vendor.close()

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        wanted = _parse(LicenceConfiguration, configuration)
        observed = await self._vendor.read(_assignment_path(placement))
        if observed.record is not None and not _ours(observed.record, placement):
            raise TargetConflict(f"assignment {placement.resource_id} is another request's")
        if observed.record is None or _differences(observed.record, wanted.model_dump()):
            event = {"type": "licence.assigned", **_assignment(placement), **wanted.model_dump()}
            await self._vendor.send(
                event, subject=str(placement.resource_id), read_at=observed.revision
            )
        return Deployed(
            outputs={"assignment_id": str(placement.resource_id), **wanted.model_dump()}
        )

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        wanted = _parse(LicenceConfiguration, configuration)
        record = (await self._vendor.read(_assignment_path(placement))).record
        if record is None:
            return ["missing"]
        found = _differences(record, wanted.model_dump())
        if not _ours(record, placement):
            found.insert(0, f"assigned by request {record.get('request_id')}, not this one")
        return found

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._release(placement)

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._release(placement)

    async def _release(self, placement: Placement) -> None:
        observed = await self._vendor.read(_assignment_path(placement))
        record = observed.record
        if record is None:
            return  # released already, or never assigned
        if not _ours(record, placement):
            logger.info("assignment %s is another request's: left alone", placement.resource_id)
            return
        fields = {key: record[key] for key in ("product", "seat", "assignee")}
        event = {"type": "licence.released", **_assignment(placement), **fields}
        try:
            await self._vendor.send(
                event, subject=str(placement.resource_id), read_at=observed.revision
            )
        except TargetConflict:
            logger.info("assignment %s changed hands meanwhile: left alone", placement.resource_id)


def _assignment_path(placement: Placement) -> str:
    return f"/assignments/{placement.resource_id}"


def _assignment(placement: Placement) -> dict[str, str]:
    return {"assignment_id": str(placement.resource_id), "request_id": str(placement.request_id)}


class MdmDriver:
    """Laptops and phones, enrolled with the MDM (`device.enrolled`) and on deprovision retired
    and wiped (`device.retired`), since the device goes back to inventory."""

    needs_secret = False

    def __init__(
        self,
        target: WebhookTarget,
        *,
        timeout_s: float,
        allow_list: AllowList,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._mdm = SignedClient(
            "mdm",
            target,
            timeout_s=timeout_s,
            allow_list=allow_list,
            tracer_provider=tracer_provider,
        )

    async def close(self) -> None:
        await self._mdm.close()

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        wanted = _parse(DeviceConfiguration, configuration)
        observed = await self._mdm.read(_device_path(wanted))
        record = observed.record
        enrolled = record if record is not None and record.get("state") == "enrolled" else None
        if enrolled is not None and not _ours(enrolled, placement):
            raise TargetConflict(f"device {wanted.serial} is enrolled by another request")
        if _device_differences(record, wanted, placement):
            event = {
                "type": "device.enrolled",
                "request_id": str(placement.request_id),
                "wipe": False,
                **wanted.model_dump(),
            }
            await self._mdm.send(event, subject=wanted.serial, read_at=observed.revision)
        return Deployed(outputs=dict(wanted.model_dump()))

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        wanted = _parse(DeviceConfiguration, configuration)
        record = (await self._mdm.read(_device_path(wanted))).record
        return _device_differences(record, wanted, placement)

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._retire(placement, configuration)

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._retire(placement, configuration)

    async def _retire(self, placement: Placement, configuration: dict[str, Any]) -> None:
        wanted = _parse(DeviceConfiguration, configuration)
        observed = await self._mdm.read(_device_path(wanted))
        record = observed.record
        if record is None:
            return  # never enrolled
        if not _ours(record, placement):
            logger.info("device %s is another request's: left alone", wanted.serial)
            return
        if record.get("state") == "retired" and record.get("wiped"):
            return
        fields = {key: record[key] for key in ("serial", "model", "kind", "assignee")}
        event = {
            "type": "device.retired",
            "request_id": str(placement.request_id),
            "wipe": True,
            **fields,
        }
        try:
            await self._mdm.send(event, subject=wanted.serial, read_at=observed.revision)
        except TargetConflict:
            logger.info("device %s changed hands meanwhile: left alone", wanted.serial)


def _device_path(device: DeviceConfiguration) -> str:
    return f"/devices/{quote(device.serial, safe='')}"


def _device_differences(
    record: dict[str, Any] | None, wanted: DeviceConfiguration, placement: Placement
) -> list[str]:
    if record is None:
        return ["missing"]
    found = []
    if record.get("state") != "enrolled":
        found.append(f"state is {record.get('state')!r}, expected 'enrolled'")
    if not _ours(record, placement):
        found.append(f"enrolled by request {record.get('request_id')}, not this one")
    fields = wanted.model_dump(exclude={"serial"})
    return found + _differences(record, fields)
