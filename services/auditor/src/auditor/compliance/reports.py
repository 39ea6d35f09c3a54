"""Compliance reports for a period, computed from a tenant's audit records alone (pure, no
I/O): what was provisioned, who gained and lost access, how approvals were decided, what got
past them, which resources outlived their lease or drifted, and what it cost.

The records are folded one at a time in sequence order (`ReportBuilder.add`), so a report
needs memory for the tenant's requests and resources, never for its records. The builder is
fed every record of the tenant that occurred before the period's end, not only the period's:
the earlier ones give the context later events do not repeat (a request's item and requester,
a resource's owner) and the state the period ends in (a lease, an unresolved drift).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.entries import Entry
from events.contracts import lifecycle

# A request's statuses that end it (the request-api's contract), and those that count as failed.
TERMINAL = lifecycle.TERMINAL
FAILED = lifecycle.FAILED
# What a request does only once it may go ahead: after validation, allocation, completion.
PROGRESS = frozenset({"request.validated", "resource.allocated", "provisioning.completed"})
DECIDED = {"approve": "approved", "deny": "denied"}
# The cost rule's month: the catalog prices per month; a fixed 30 days makes it reproducible.
MONTH = timedelta(days=30)
DAY = timedelta(days=1)

COST_RULE = (
    "cost = the item's monthly price x the time the resource was active within the period / "
    "30 days; active from its provision's completion to its deprovision's completion (or the "
    "period's end)"
)

# The columns of each section, in order: CSV headers and HTML tables follow them.
SECTIONS: dict[str, tuple[str, ...]] = {
    "activity": (
        "tenant",
        "catalog_item",
        "operation",
        "submitted",
        "completed",
        "failed",
        "rejected",
        "cancelled",
    ),
    "access": ("person", "change", "catalog_item", "resource_id", "request_id", "at"),
    "approvals": (
        "request_id",
        "catalog_item",
        "requester",
        "approver",
        "stage",
        "decision",
        "settled",
        "requested_at",
        "decided_at",
        "justification",
    ),
    "bypassed_approvals": (
        "request_id",
        "catalog_item",
        "requester",
        "awaiting_approval_at",
        "progressed_by",
        "progressed_at",
        "approved_at",
    ),
    "self_approvals": (
        "request_id",
        "catalog_item",
        "requester",
        "approver",
        "decision",
        "decided_at",
    ),
    "leases_past_end": ("resource_id", "catalog_item", "owner", "expires_at"),
    "drift": ("resource_id", "catalog_item", "owner", "detected_at", "differences"),
    "cost": (
        "tenant",
        "catalog_item",
        "resources",
        "active_days",
        "monthly_price",
        "currency",
        "cost",
    ),
    "cost_per_tenant": ("tenant", "resources", "active_days", "currency", "cost", "unpriced"),
}
TITLES = {
    "activity": "Provisioning activity per tenant and catalog item",
    "access": "Access granted and removed per person",
    "approvals": "Approval decisions",
    "bypassed_approvals": "Requests that bypassed approval",
    "self_approvals": "Self-approvals",
    "leases_past_end": "Resources past their lease",
    "drift": "Resources with unresolved drift",
    "cost": "Cost per tenant and catalog item",
    "cost_per_tenant": "Cost per tenant",
}


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


@dataclass(frozen=True)
class Price:
    monthly: float
    currency: str = "EUR"


@dataclass(frozen=True)
class Report:
    tenant: str
    period: Period
    records: int
    sections: dict[str, list[dict[str, Any]]]
    priced: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "from": _iso(self.period.start),
            "to": _iso(self.period.end),
            "records_read": self.records,
            "cost_rule": COST_RULE if self.priced else COST_RULE + " (no prices known: cost unset)",
            "sections": self.sections,
        }


@dataclass
class _Request:
    id: str
    tenant: str | None = None
    catalog_item: str | None = None
    operation: str = "provision"
    requester: str | None = None
    on_behalf_of: str | None = None
    owner: str | None = None
    resource_id: str | None = None
    submitted_at: datetime | None = None
    awaiting_at: datetime | None = None
    approved_at: datetime | None = None
    progressed: tuple[str, datetime] | None = None
    cancel_requested_at: datetime | None = None
    status: str | None = None
    ended: tuple[str, datetime] | None = None

    def outcome(self) -> tuple[str, datetime] | None:
        """How the request ended, as the request-api decides it: a cancel turns a refusal
        or an undo into `cancelled`, and ends a request awaiting approval at once."""
        if self.cancel_requested_at is not None:
            if self.status == "awaiting_approval":
                return "cancelled", self.cancel_requested_at
            if self.ended is not None and self.ended[0] in ("failed", "rolled_back"):
                return "cancelled", self.ended[1]
        if self.ended is None:
            return None
        status, at = self.ended
        return ("failed" if status in FAILED else status), at


@dataclass
class _Resource:
    id: str
    tenant: str | None = None
    catalog_item: str | None = None
    owner: str | None = None
    provision_request: str | None = None
    provisioned_at: datetime | None = None
    deprovisioned_at: datetime | None = None
    expires_at: datetime | None = None
    drift_since: datetime | None = None
    differences: str | None = None


@dataclass(frozen=True)
class _Decision:
    request_id: str
    approver: str | None
    stage: str | None
    decision: str
    settled: bool
    decided_at: datetime
    justification: str | None


class ReportBuilder:
    """Folds a tenant's records, in sequence order, into the report of one period."""

    def __init__(
        self, tenant: str, period: Period, *, prices: Mapping[str, Price] | None = None
    ) -> None:
        self.tenant = tenant
        self.period = period
        self.prices = dict(prices or {})
        self.records = 0
        self._requests: dict[str, _Request] = {}
        self._resources: dict[str, _Resource] = {}
        self._decisions: list[_Decision] = []

    def add_all(self, entries: Iterable[Entry]) -> ReportBuilder:
        for entry in entries:
            self.add(entry)
        return self

    def add(self, entry: Entry) -> None:
        if entry.occurred_at >= self.period.end:
            return  # after the period: not what it ended in
        self.records += 1
        if entry.request_id is not None:
            self._absorb(self._request(entry.request_id), entry)
        if entry.resource_id is not None:
            self._absorb_resource(self._resource(entry.resource_id), entry)

    def report(self) -> Report:
        sections = {
            "activity": self._activity(),
            "access": self._access(),
            "approvals": self._approvals(),
            "bypassed_approvals": self._bypassed(),
            "self_approvals": self._self_approvals(),
            "leases_past_end": self._leases_past_end(),
            "drift": self._drift(),
        }
        sections["cost"], sections["cost_per_tenant"] = self._cost()
        return Report(self.tenant, self.period, self.records, sections, bool(self.prices))

    # Folding

    def _request(self, request_id: str) -> _Request:
        found = self._requests.get(request_id)
        if found is None:
            found = self._requests[request_id] = _Request(request_id)
        return found

    def _resource(self, resource_id: str) -> _Resource:
        found = self._resources.get(resource_id)
        if found is None:
            found = self._resources[resource_id] = _Resource(resource_id)
        return found

    def _absorb(self, request: _Request, entry: Entry) -> None:
        data, at, kind = entry.data, entry.occurred_at, entry.event_type
        request.tenant = request.tenant or entry.tenant
        request.resource_id = request.resource_id or entry.resource_id
        if request.catalog_item is None and isinstance(data.get("catalog_item"), str):
            # Every event carrying the request's facts carries them all (RequestFacts).
            request.catalog_item = data["catalog_item"]
            request.operation = _text(data.get("operation")) or "provision"
            request.requester = _text(data.get("requester"))
            request.owner = _owner(data)
        if kind == "request.submitted":
            request.submitted_at = request.submitted_at or at
            request.requester = request.requester or entry.actor
            request.on_behalf_of = entry.on_behalf_of
        elif kind == "request.awaiting_approval":
            request.awaiting_at = request.awaiting_at or at
        elif kind == "request.cancellation_requested":
            request.cancel_requested_at = request.cancel_requested_at or at
        if kind == "request.approved" and request.approved_at is None:
            request.approved_at = at
        if kind in PROGRESS and request.awaiting_at is not None and request.progressed is None:
            request.progressed = (kind, at)
        if entry.after is not None:
            request.status = entry.after
            if entry.after in TERMINAL:
                request.ended = (entry.after, at)
        decision = _decision(entry)
        if decision is not None and at in self.period:
            self._decisions.append(decision)

    def _absorb_resource(self, resource: _Resource, entry: Entry) -> None:
        data, at, kind = entry.data, entry.occurred_at, entry.event_type
        resource.tenant = resource.tenant or entry.tenant
        if isinstance(data.get("catalog_item"), str):
            resource.catalog_item = resource.catalog_item or data["catalog_item"]
            resource.owner = resource.owner or _owner(data)
        if kind == "provisioning.completed":
            if (_text(data.get("operation")) or "provision") == "provision":
                resource.provision_request = entry.request_id
                resource.provisioned_at = at
                # The provision's owner is the one who had the resource, whoever removes it.
                resource.owner = _owner(data) or resource.owner
            elif data.get("operation") == "deprovision":
                resource.deprovisioned_at = resource.deprovisioned_at or at
        elif kind in ("lease.expiring", "lease.extended"):
            resource.expires_at = _moment(data.get("expires_at")) or resource.expires_at
        elif kind == "drift.detected":
            resource.drift_since = resource.drift_since or at
            resource.differences = entry.reason
        elif kind == "drift.resolved":
            resource.drift_since = resource.differences = None

    # Sections

    def _activity(self) -> list[dict[str, Any]]:
        counts: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(SECTIONS["activity"][3:], 0)
        )
        for request in self._requests.values():
            key = (
                request.tenant or "",
                request.catalog_item or "unknown",
                request.operation,
            )
            if request.submitted_at in self.period:
                counts[key]["submitted"] += 1
            outcome = self._outcome_in_period(request)
            if outcome is not None:
                counts[key][outcome] += 1
        return [
            {"tenant": t, "catalog_item": i, "operation": o, **counts[(t, i, o)]}
            for t, i, o in sorted(counts)
        ]

    def _access(self) -> list[dict[str, Any]]:
        """Every completed provision gives its owner (the assignee, else the requester)
        something: access to a system or an asset. A completed deprovision takes it away from
        the resource's owner."""
        rows: list[dict[str, Any]] = []
        for request in self._requests.values():
            if self._outcome_in_period(request) != "completed" or request.ended is None:
                continue
            if request.operation not in ("provision", "deprovision"):
                continue
            person = request.owner
            resource = self._resources.get(request.resource_id or "")
            if request.operation == "deprovision" and resource is not None:
                person = resource.owner or person
            rows.append(
                {
                    "person": person,
                    "change": "granted" if request.operation == "provision" else "removed",
                    "catalog_item": request.catalog_item,
                    "resource_id": request.resource_id,
                    "request_id": request.id,
                    "at": _iso(request.ended[1]),
                }
            )
        return sorted(rows, key=lambda row: (row["person"] or "", row["at"], row["request_id"]))

    def _approvals(self) -> list[dict[str, Any]]:
        """One row per decision: an approver's vote that did not settle its request
        (`approval.decision_recorded`) and the decision that did (`request.approved`,
        `request.denied`, the approval clock's included)."""
        rows: list[dict[str, Any]] = []
        for decision in self._decisions:
            request = self._requests[decision.request_id]
            rows.append(
                {
                    "request_id": decision.request_id,
                    "catalog_item": request.catalog_item,
                    "requester": request.requester,
                    "approver": decision.approver,
                    "stage": decision.stage,
                    "decision": decision.decision,
                    "settled": decision.settled,
                    "requested_at": _iso(request.awaiting_at),
                    "decided_at": _iso(decision.decided_at),
                    "justification": decision.justification,
                }
            )
        return sorted(rows, key=lambda row: (row["decided_at"], row["request_id"]))

    def _bypassed(self) -> list[dict[str, Any]]:
        """A request bypassed approval when it was held for one (`request.awaiting_approval`)
        and then went ahead (its first `request.validated`, `resource.allocated` or
        `provisioning.completed` after that) in the period, with no `request.approved`
        occurring at or before that step. Approver votes do not count: only the decision
        that settles the request lets it go ahead. Times, not sequence numbers, order the
        events: the auditor may record events of different topics out of their order."""
        rows: list[dict[str, Any]] = []
        for request in self._requests.values():
            if request.awaiting_at is None or request.progressed is None:
                continue
            kind, at = request.progressed
            approved = request.approved_at is not None and request.approved_at <= at
            if at in self.period and not approved:
                rows.append(
                    {
                        "request_id": request.id,
                        "catalog_item": request.catalog_item,
                        "requester": request.requester,
                        "awaiting_approval_at": _iso(request.awaiting_at),
                        "progressed_by": kind,
                        "progressed_at": _iso(at),
                        "approved_at": _iso(request.approved_at),
                    }
                )
        return sorted(rows, key=lambda row: (row["progressed_at"], row["request_id"]))

    def _self_approvals(self) -> list[dict[str, Any]]:
        """A decision (vote, approval or denial) by the request's requester or by the person
        it was submitted on behalf of."""
        rows: list[dict[str, Any]] = []
        for decision in self._decisions:
            request = self._requests[decision.request_id]
            selves = {request.requester, request.on_behalf_of} - {None}
            if decision.approver in selves:
                rows.append(
                    {
                        "request_id": decision.request_id,
                        "catalog_item": request.catalog_item,
                        "requester": request.requester,
                        "approver": decision.approver,
                        "decision": decision.decision,
                        "decided_at": _iso(decision.decided_at),
                    }
                )
        return sorted(rows, key=lambda row: (row["decided_at"], row["request_id"]))

    def _leases_past_end(self) -> list[dict[str, Any]]:
        """A resource whose lease, as last announced (`lease.expiring`) or extended
        (`lease.extended`), ended before the period's end, and whose deprovision had not
        completed by then."""
        rows = [
            {
                "resource_id": r.id,
                "catalog_item": r.catalog_item,
                "owner": r.owner,
                "expires_at": _iso(r.expires_at),
            }
            for r in self._resources.values()
            if r.expires_at is not None
            and r.expires_at < self.period.end
            and r.deprovisioned_at is None
        ]
        return sorted(rows, key=lambda row: (row["expires_at"], row["resource_id"]))

    def _drift(self) -> list[dict[str, Any]]:
        """A resource with a `drift.detected` followed, by the period's end, neither by a
        `drift.resolved` nor by its deprovision (which ends what could drift)."""
        rows = [
            {
                "resource_id": r.id,
                "catalog_item": r.catalog_item,
                "owner": r.owner,
                "detected_at": _iso(r.drift_since),
                "differences": r.differences,
            }
            for r in self._resources.values()
            if r.drift_since is not None
            and (r.deprovisioned_at is None or r.deprovisioned_at < r.drift_since)
        ]
        return sorted(rows, key=lambda row: (row["detected_at"], row["resource_id"]))

    def _cost(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Each resource whose provision completed costs its item's monthly price for the
        time it was active within the period (see COST_RULE). Without a price for an item,
        its active time is still counted and its cost left unset."""
        active: dict[tuple[str, str], list[timedelta]] = defaultdict(list)
        for resource in self._resources.values():
            provision = self._requests.get(resource.provision_request or "")
            if provision is None or resource.provisioned_at is None:
                continue
            outcome = provision.outcome()
            if outcome is None or outcome[0] != "completed":
                continue  # cancelled in time: undone, never handed over
            start = max(resource.provisioned_at, self.period.start)
            end = min(resource.deprovisioned_at or self.period.end, self.period.end)
            if end > start:
                key = (resource.tenant or "", resource.catalog_item or "unknown")
                active[key].append(end - start)
        per_item = []
        for tenant, item in sorted(active):
            spans = active[(tenant, item)]
            total = sum(spans, timedelta())
            price = self.prices.get(item)
            per_item.append(
                {
                    "tenant": tenant,
                    "catalog_item": item,
                    "resources": len(spans),
                    "active_days": round(total / DAY, 6),
                    "monthly_price": price.monthly if price else None,
                    "currency": price.currency if price else None,
                    "cost": round(price.monthly * (total / MONTH), 2) if price else None,
                }
            )
        return per_item, _per_tenant(per_item)

    def _outcome_in_period(self, request: _Request) -> str | None:
        outcome = request.outcome()
        return outcome[0] if outcome is not None and outcome[1] in self.period else None


def build(
    tenant: str,
    period: Period,
    entries: Iterable[Entry],
    *,
    prices: Mapping[str, Price] | None = None,
) -> Report:
    return ReportBuilder(tenant, period, prices=prices).add_all(entries).report()


def _per_tenant(per_item: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for tenant in sorted({row["tenant"] for row in per_item}):
        items = [row for row in per_item if row["tenant"] == tenant]
        priced = [row for row in items if row["cost"] is not None]
        currencies = sorted({row["currency"] for row in priced})
        rows.append(
            {
                "tenant": tenant,
                "resources": sum(row["resources"] for row in items),
                "active_days": round(sum(row["active_days"] for row in items), 6),
                "currency": "/".join(currencies) or None,
                "cost": round(sum(row["cost"] for row in priced), 2) if priced else None,
                "unpriced": ", ".join(r["catalog_item"] for r in items if r["cost"] is None),
            }
        )
    return rows


def _decision(entry: Entry) -> _Decision | None:
    if entry.request_id is None:
        return None
    data, kind = entry.data, entry.event_type
    if kind == "approval.decision_recorded":
        said = _text(data.get("decision")) or "unknown"
        decision, settled = DECIDED.get(said, said), False
        decided_at = _moment(data.get("at")) or entry.occurred_at
    elif kind in ("request.approved", "request.denied"):
        decision, settled = kind.removeprefix("request."), True
        decided_at = entry.occurred_at
    else:
        return None
    return _Decision(
        request_id=entry.request_id,
        approver=_text(data.get("approver")) or entry.actor,
        stage=_text(data.get("stage")),
        decision=decision,
        settled=settled,
        decided_at=decided_at,
        justification=_text(data.get("justification")),
    )


def _owner(data: Mapping[str, Any]) -> str | None:
    """As RequestFacts.owner: the assignee, else whoever asked."""
    parameters = data.get("parameters")
    assignee = parameters.get("assignee") if isinstance(parameters, Mapping) else None
    return _text(assignee) or _text(data.get("requester"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None
