"""A resource as it stood at a past instant, folded purely from the audit records up to then:
its lifecycle state, what it was made of (parameters, configuration, outputs, as the records
kept them, secrets masked), drift, lease, and the requests that touched it.

The state, by the last record that moves it:

- `requested` → `allocated` → `configured` → `deployed` → `verified` → `active`: its
  provision request's status (`active` once provisioned and handed over);
- `compensating` → `rolled_back` (or `compensation_failed`): the provision was undone;
  `rejected`, `failed`: it was refused before anything was held;
- `deprovisioning` → `deprovisioned` (back to `active` if the deprovision fails), then
  `purged` when a resource kept for its retention period is deleted.

A modify's parameters, configuration and outputs count once the modify completed: until then
(or if it fails) the resource is as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditor.entries import Entry
from auditor.timeline import moves, requesters_of
from events.contracts import lifecycle

_PROVISION_STATES = {
    "submitted": "requested",
    "awaiting_approval": "requested",
    "validated": "requested",
    "backordered": "requested",
    "allocated": "allocated",
    "configured": "configured",
    "deployed": "deployed",
    "verified": "verified",
    "completed": "active",
    "compensating": "compensating",
    "rolled_back": "rolled_back",
    "cancelled": "rolled_back",
    "compensation_failed": "compensation_failed",
    "rejected": "rejected",
    "failed": "failed",
}
# A deprovision that ends any other way than completed leaves the resource as it was.
_GAVE_UP = lifecycle.UNSUCCESSFUL
# What the resource is made of, as the events carry it.
_VALUES = ("parameters", "configuration", "outputs")


@dataclass
class Drift:
    differences: list[str]
    detected_at: datetime


@dataclass
class RequestSeen:
    """A request that touched the resource, as far as its records up to the instant go."""

    request_id: str
    operation: str
    requester: str | None = None
    status: str | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None


@dataclass
class ResourceState:
    resource_id: str
    at: datetime
    state: str = "unknown"
    catalog_item: str | None = None
    tenant: str | None = None
    owner: str | None = None
    server_id: str | None = None
    parameters: dict[str, Any] | None = None
    configuration: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    drift: Drift | None = None
    lease_expires_at: str | None = None
    requests: list[RequestSeen] = field(default_factory=list)
    # The last record the state was folded from.
    last_seq: int = 0
    last_occurred_at: datetime | None = None
    last_event_type: str | None = None


def state_at(resource_id: str, at: datetime, entries: Iterable[Entry]) -> ResourceState | None:
    """`entries`: the records naming the resource and the other records of the requests
    that touched it (an undo's events do not name the resource). None: no record of the
    resource up to `at`."""
    ordered = sorted((e for e in entries if e.occurred_at <= at), key=lambda e: e.seq)
    if not any(e.resource_id == resource_id for e in ordered):
        return None
    fold = _Fold(ResourceState(resource_id=resource_id, at=at))
    for entry in ordered:
        fold.add(entry)
    state = fold.state
    state.requests = list(fold.requests.values())
    return state


def people_of(state: ResourceState, entries: Iterable[Entry]) -> set[str]:
    """Who the resource is for or was asked by: its owner, and whoever requested or was
    acted for in the requests that touched it."""
    people = requesters_of(entries)
    return people | {state.owner} if state.owner else people


class _Fold:
    def __init__(self, state: ResourceState) -> None:
        self.state = state
        self.requests: dict[str, RequestSeen] = {}
        # A modify's values, applied when it completes.
        self.pending: dict[str, dict[str, Any]] = {}

    def add(self, entry: Entry) -> None:
        state, data = self.state, entry.data
        state.last_seq, state.last_occurred_at = entry.seq, entry.occurred_at
        state.last_event_type = entry.event_type
        state.tenant = entry.tenant or state.tenant
        state.catalog_item = _text(data.get("catalog_item")) or state.catalog_item
        state.lease_expires_at = _text(data.get("expires_at")) or state.lease_expires_at
        request = self._request(entry)
        moved = entry.after is not None and moves(request.status, entry.after)
        if moved:
            request.status = entry.after
        values = _values(data)
        if request.operation == "provision":
            self._apply(values)
            state.owner = _owner(data) or state.owner
            if moved and entry.after is not None:
                state.state = _PROVISION_STATES.get(entry.after, state.state)
        elif request.operation == "modify":
            self.pending.setdefault(request.request_id, {}).update(values)
            if entry.event_type == "provisioning.completed":
                self._apply(self.pending.pop(request.request_id))
        elif request.operation == "deprovision" and moved:
            if entry.event_type == "request.submitted":
                state.state = "deprovisioning"
            elif entry.event_type == "provisioning.completed":
                state.state = "deprovisioned"
            elif entry.after in _GAVE_UP and state.state == "deprovisioning":
                state.state = "active"
        if entry.event_type == "resource.purged":
            state.state = "purged"
        elif entry.event_type == "drift.detected":
            differences = data.get("differences")
            found = (
                [d for d in differences if isinstance(d, str)]
                if isinstance(differences, list)
                else []
            )
            state.drift = Drift(differences=found, detected_at=entry.occurred_at)
        elif entry.event_type == "drift.resolved":
            state.drift = None

    def _request(self, entry: Entry) -> RequestSeen:
        request_id = entry.request_id or ""
        request = self.requests.get(request_id)
        if request is None:
            request = self.requests[request_id] = RequestSeen(
                request_id=request_id, operation="provision", first_at=entry.occurred_at
            )
        request.last_at = entry.occurred_at
        operation = _text(entry.data.get("operation"))
        if operation in ("provision", "modify", "deprovision"):
            request.operation = operation
        if entry.event_type == "request.submitted":
            request.requester = entry.actor
        return request

    def _apply(self, values: Mapping[str, Any]) -> None:
        state = self.state
        state.parameters = values.get("parameters", state.parameters)
        state.configuration = values.get("configuration", state.configuration)
        state.outputs = values.get("outputs", state.outputs)
        state.server_id = values.get("server_id", state.server_id)


def _values(data: Mapping[str, Any]) -> dict[str, Any]:
    found = {key: data[key] for key in _VALUES if isinstance(data.get(key), dict)}
    if _text(data.get("server_id")):
        found["server_id"] = data["server_id"]
    return found


def _owner(data: Mapping[str, Any]) -> str | None:
    """As the request-api names it: the item's assignee when it has one, else whoever asked
    (only the events of a request's own facts say who asked)."""
    parameters = data.get("parameters")
    assignee = parameters.get("assignee") if isinstance(parameters, Mapping) else None
    return _text(assignee) or _text(data.get("requester"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
