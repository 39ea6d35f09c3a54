"""A request's journey step by step, rebuilt purely from its audit records: who did each
step, when its input arrived and when it finished, and what it waited for (an approver,
stock, retries of a failing handler)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from auditor.entries import Entry
from events.contracts import lifecycle
from events.contracts.requests import RequestStatus

RETRIED = "processing.retried"
# The request's statuses, as its records' `after` moves it (the request-api's contract).
FORWARD = lifecycle.FORWARD
ENDED = lifecycle.TERMINAL
_ENDS_OF_UNDOING = lifecycle.ENDS_OF_UNDOING

# Records that say a service finished a step of the journey (its answer to the step's input).
_FINISHING = frozenset(
    {
        "request.awaiting_approval",
        "request.validated",
        "request.rejected",
        "validation.failed",
        "request.approved",
        "request.denied",
        "resource.allocated",
        "allocation.failed",
        "resource.configured",
        "configuration.failed",
        "resource.deployed",
        "resource.verified",
        "provisioning.completed",
        "provisioning.failed",
        "deployment.rolled_back",
        "configuration.rolled_back",
        "allocation.released",
        "compensation.failed",
    }
)
# A person's request in the middle of the journey: an instant on it, not a step of work.
_INSTANTS = frozenset({"request.cancellation_requested", "request.compensation_retry_requested"})
_DECISIONS = frozenset({"approval.decision_recorded", "request.approved", "request.denied"})

W = TypeVar("W", bound="Wait")


@dataclass
class Decision:
    approver: str | None
    decision: str
    stage: str | None
    at: datetime


@dataclass
class Wait:
    since: datetime
    until: datetime | None = None
    duration_s: float | None = None


@dataclass
class ApprovalWait(Wait):
    decisions: list[Decision] = field(default_factory=list)


@dataclass
class Retry:
    service: str
    handled_type: str | None
    attempts: int | None
    outcome: str | None
    first_failed_at: datetime | None
    at: datetime
    # Time lost to retries: from the first failure to the retry's outcome.
    lost_s: float | None
    last_error: str | None


@dataclass
class Waits:
    approval: ApprovalWait | None = None
    stock: Wait | None = None
    retries: list[Retry] = field(default_factory=list)


@dataclass
class Step:
    name: str
    service: str
    actor: str | None
    # The record that finished the step, and the one whose arrival started it.
    event_type: str
    seq: int
    input_event_type: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    outcome: str
    reason: str | None
    compensation: bool
    waits: Waits = field(default_factory=Waits)


@dataclass
class Timeline:
    request_id: str
    tenant: str | None = None
    catalog_item: str | None = None
    operation: str | None = None
    requester: str | None = None
    resource_id: str | None = None
    status: str | None = None
    trace_id: str | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    steps: list[Step] = field(default_factory=list)
    # Retries of a service that performs no step (the request-api or the auditor following).
    other_retries: list[Retry] = field(default_factory=list)


def moves(current: str | None, new: str) -> bool:
    """Whether a record's `after` moves the request's status: never backwards, so a late
    record (an on-demand verification of a completed request) does not reopen it."""
    if current is None:
        return True
    if current == new:
        return False
    if current == "compensation_failed":
        return new == "compensating"  # an operator's retry of the undo
    if current == "compensating":
        return new in _ENDS_OF_UNDOING
    if current == "completed":
        # A cancel that raced the completion undoes it.
        return new == RequestStatus.COMPENSATING or new in _ENDS_OF_UNDOING
    if current in ENDED:
        return False
    if new in FORWARD:
        return current in FORWARD and FORWARD.index(RequestStatus(new)) > FORWARD.index(
            RequestStatus(current)
        )
    return True


def requesters_of(entries: Iterable[Entry]) -> set[str]:
    """Who asked for the request, and whoever was acted for in its records."""
    people = {e.actor for e in entries if e.event_type == "request.submitted"}
    people |= {e.on_behalf_of for e in entries}
    return {person for person in people if person}


def timeline_of(request_id: str, entries: Iterable[Entry]) -> Timeline:
    """Records are taken in the order things happened (their time, then their sequence):
    one request's events travel on several topics, so the auditor may record them out of
    causal order."""
    ordered = sorted(entries, key=lambda e: (e.occurred_at, e.seq))
    timeline = Timeline(request_id=request_id)
    if not ordered:
        return timeline
    build = _Build(ordered)
    for index, entry in enumerate(ordered):
        build.add(index, entry)
    build.close_open_waits()
    timeline.tenant = next((e.tenant for e in ordered if e.tenant), None)
    timeline.catalog_item = _first_text(ordered, "catalog_item")
    timeline.operation = _first_text(ordered, "operation") or "provision"
    timeline.requester = build.submitted.actor if build.submitted is not None else None
    timeline.resource_id = next((e.resource_id for e in ordered if e.resource_id), None)
    timeline.trace_id = next((e.trace_id for e in ordered if e.trace_id), None)
    timeline.status, timeline.finished_at = build.final_status()
    timeline.submitted_at = build.started_at
    timeline.duration_s = _seconds(timeline.submitted_at, timeline.finished_at)
    timeline.steps = sorted(build.steps, key=lambda s: s.started_at)
    for entry in build.retries:
        retry = _retry_of(entry)
        step = build.step_retried(entry, retry)
        (step.waits.retries if step is not None else timeline.other_retries).append(retry)
    return timeline


class _Build:
    def __init__(self, ordered: list[Entry]) -> None:
        self.ordered = ordered
        self.submitted = next((e for e in ordered if e.event_type == "request.submitted"), None)
        self.started_at = (self.submitted or ordered[0]).occurred_at
        # The record whose arrival starts the next step: the previous step's finish.
        self.input: Entry | None = self.submitted
        self.input_at: datetime = self.started_at
        self.status: str | None = None
        self.ended_at: datetime | None = None
        self.cancelled: Entry | None = None
        self.steps: list[Step] = []
        # The steps of work (not a person's instant) with the index of their finishing record.
        self.work: list[tuple[Step, int]] = []
        self.approval: ApprovalWait | None = None
        self.stock: Wait | None = None
        self.retries: list[Entry] = []

    def add(self, index: int, entry: Entry) -> None:
        if entry.event_type == RETRIED:
            self.retries.append(entry)
            return
        if entry.after is not None:
            if moves(self.status, entry.after):
                self.status = entry.after
                self.ended_at = entry.occurred_at if entry.after in ENDED else None
            elif entry.event_type in _FINISHING:
                return  # not a step of this journey (e.g. a later re-verification)
        if entry.event_type in _DECISIONS and self.approval is not None:
            self.approval.decisions.append(
                Decision(
                    approver=entry.actor,
                    decision=entry.outcome,
                    stage=_text(entry.data.get("stage")),
                    at=entry.occurred_at,
                )
            )
        if entry.event_type in _INSTANTS:
            self._instant(entry)
        elif entry.event_type == "allocation.backordered":
            self.stock = Wait(since=entry.occurred_at)
        elif entry.event_type in _FINISHING:
            self._finish(index, entry)

    def _instant(self, entry: Entry) -> None:
        self.steps.append(self._step(entry, started_at=entry.occurred_at))
        if entry.event_type == "request.cancellation_requested":
            self.cancelled = entry
        else:
            # After a failed undo nothing runs until an operator asks again: the next
            # step starts from that request. (A cancel races whatever step is running.)
            self.input, self.input_at = entry, entry.occurred_at

    def _finish(self, index: int, entry: Entry) -> None:
        step = self._step(entry, started_at=self.input_at)
        # A wait that opened inside the step ends with it.
        step.waits.approval, self.approval = _closed(self.approval, entry.occurred_at), None
        step.waits.stock, self.stock = _closed(self.stock, entry.occurred_at), None
        self.steps.append(step)
        self.work.append((step, index))
        self.input, self.input_at = entry, entry.occurred_at
        if entry.event_type == "request.awaiting_approval":
            self.approval = ApprovalWait(since=entry.occurred_at)

    def _step(self, entry: Entry, *, started_at: datetime) -> Step:
        awaiting = entry.event_type == "request.awaiting_approval"
        return Step(
            # The validator's answer is that it needs an approver; the approval is a step.
            name="validation" if awaiting else entry.step,
            service=entry.service,
            actor=entry.actor,
            event_type=entry.event_type,
            seq=entry.seq,
            input_event_type=None if entry.event_type in _INSTANTS else self._input_type(),
            started_at=started_at,
            finished_at=entry.occurred_at,
            duration_s=_seconds(started_at, entry.occurred_at),
            outcome="approval_required" if awaiting else entry.outcome,
            reason=entry.reason,
            compensation=entry.step == "compensation",
        )

    def _input_type(self) -> str | None:
        return self.input.event_type if self.input is not None else None

    def close_open_waits(self) -> None:
        """A wait still open has no step finishing it yet: show the step as under way (or,
        once the request ended without it, as never finished)."""
        ended = self.status in ENDED or self.cancelled is not None
        for wait, name in ((self.approval, "approval"), (self.stock, "allocation")):
            if wait is None:
                continue
            step = Step(
                name=name,
                service="",
                actor=None,
                event_type="",
                seq=0,
                input_event_type=self._input_type(),
                started_at=self.input_at,
                finished_at=None,
                duration_s=None,
                outcome="unfinished" if ended else "pending",
                reason=None,
                compensation=False,
            )
            if isinstance(wait, ApprovalWait):
                step.waits.approval = wait
            else:
                step.waits.stock = wait
            self.steps.append(step)

    def final_status(self) -> tuple[str | None, datetime | None]:
        """The request-api ends a cancelled request `cancelled` where the records alone say
        it was undone, failed, or still awaiting its approver."""
        if self.cancelled is not None and self.status in (
            None,
            "submitted",
            "awaiting_approval",
            "rolled_back",
            "failed",
        ):
            return "cancelled", self.ended_at or self.cancelled.occurred_at
        return self.status, self.ended_at

    def step_retried(self, entry: Entry, retry: Retry) -> Step | None:
        """A retry belongs to the step its service performed on the event it retried: the
        first step that service finished after that event (or, if the event is not among
        the records, the step that service started from an event of that type)."""
        handled_id = _text(entry.data.get("handled_event_id"))
        handled = next(
            (i for i, e in enumerate(self.ordered) if handled_id and e.event_id == handled_id),
            None,
        )
        mine = [(step, i) for step, i in self.work if step.service == retry.service]
        if handled is not None:
            return next((step for step, i in mine if i > handled), None)
        return next((step for step, _ in mine if step.input_event_type == retry.handled_type), None)


def _retry_of(entry: Entry) -> Retry:
    data = entry.data
    attempts = data.get("attempts")
    first_failed_at = _moment(data.get("first_failed_at"))
    return Retry(
        service=_text(data.get("service")) or entry.service,
        handled_type=_text(data.get("handled_type")),
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else None,
        outcome=_text(data.get("outcome")),
        first_failed_at=first_failed_at,
        at=entry.occurred_at,
        lost_s=_seconds(first_failed_at, entry.occurred_at),
        last_error=_text(data.get("last_error")) or entry.reason,
    )


def _closed(wait: W | None, until: datetime) -> W | None:
    if wait is not None:
        wait.until, wait.duration_s = until, _seconds(wait.since, until)
    return wait


def _seconds(since: datetime | None, until: datetime | None) -> float | None:
    if since is None or until is None:
        return None
    return round((until - since).total_seconds(), 3)


def _moment(value: Any) -> datetime | None:
    """An aware time as the record's JSON holds it; anything else is not known."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(entries: list[Entry], key: str) -> str | None:
    return next((t for e in entries if (t := _text(e.data.get(key)))), None)
