import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.entries import Entry
from auditor.facts import facts_of
from auditor.timeline import Timeline, moves, timeline_of

REQUEST = str(uuid.uuid4())
RESOURCE = str(uuid.uuid4())
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
FACTS = {
    "catalog_item": "postgres_database",
    "parameters": {"name": "orders"},
    "requester": "rita",
    "tenant": "acme",
    "resource_id": RESOURCE,
}


class Journey:
    """Records of one request as the auditor keeps them, each `after` seconds from T0."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, event_type: str, source: str, after: float, **data: Any) -> Entry:
        data = {"request_id": REQUEST, **data}
        said = facts_of(event_type, source, REQUEST, data)
        entry = Entry(
            seq=len(self.entries) + 1,
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            occurred_at=T0 + timedelta(seconds=after),
            service=said.service,
            step=said.step,
            outcome=said.outcome,
            tenant=said.tenant or "acme",
            request_id=REQUEST,
            resource_id=said.resource_id,
            actor=said.actor,
            on_behalf_of=said.on_behalf_of,
            reason=said.reason,
            before=said.before,
            after=said.after,
            trace_id="ab" * 16,
            data=data,
        )
        self.entries.append(entry)
        return entry

    def timeline(self) -> Timeline:
        return timeline_of(REQUEST, self.entries)


def provisioned(journey: Journey, start: float = 1.0) -> None:
    """Allocation to completion, from `start` seconds on."""
    journey.add("resource.allocated", "allocator", start, **FACTS, server_id="pg-1")
    journey.add("resource.configured", "configurator", start + 1, **FACTS, configuration={})
    journey.add("resource.deployed", "deployer", start + 3, resource_id=RESOURCE, server_id="x")
    journey.add("resource.verified", "deployer", start + 4, resource_id=RESOURCE)
    journey.add("provisioning.completed", "deployer", start + 5, **FACTS, server_id="pg-1")


def names(timeline: Timeline) -> list[str]:
    return [step.name for step in timeline.steps]


def test_a_plain_success_is_one_step_after_another() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.validated", "validator", 0.5, **FACTS)
    provisioned(journey)

    timeline = journey.timeline()

    assert names(timeline) == [
        "validation",
        "allocation",
        "configuration",
        "deployment",
        "verification",
        "completion",
    ]
    assert (timeline.status, timeline.tenant, timeline.catalog_item) == (
        "completed",
        "acme",
        "postgres_database",
    )
    assert (timeline.requester, timeline.resource_id, timeline.operation) == (
        "rita",
        RESOURCE,
        "provision",
    )
    assert timeline.trace_id == "ab" * 16
    assert timeline.submitted_at == T0 and timeline.duration_s == 6.0
    deployment = timeline.steps[3]
    assert (deployment.service, deployment.input_event_type) == ("deployer", "resource.configured")
    assert (deployment.started_at, deployment.finished_at) == (
        T0 + timedelta(seconds=2),
        T0 + timedelta(seconds=4),
    )
    assert deployment.duration_s == 2.0 and deployment.outcome == "succeeded"
    assert all(s.waits.approval is None and s.waits.retries == [] for s in timeline.steps)
    # Each step starts when the one before it finished.
    for before, after in itertools.pairwise(timeline.steps):
        assert after.started_at == before.finished_at


def test_waiting_for_approval_lists_each_decision() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.awaiting_approval", "validator", 1, **FACTS, reasons=[])
    journey.add(
        "approval.decision_recorded",
        "request-api",
        30,
        approver="ann",
        decision="approve",
        stage="peer_review",
        stage_status="pending",
        justification="ok",
    )
    journey.add("approval.escalated", "request-api", 40, stage="peer_review")
    journey.add(
        "request.approved",
        "request-api",
        61,
        **FACTS,
        approver="ben",
        justification="fine",
        stage="peer_review",
    )
    journey.add("request.validated", "validator", 62, **FACTS)
    provisioned(journey, start=63)

    timeline = journey.timeline()

    assert names(timeline)[:4] == ["validation", "approval", "validation", "allocation"]
    first, approval = timeline.steps[0], timeline.steps[1]
    assert (first.outcome, first.finished_at) == ("approval_required", T0 + timedelta(seconds=1))
    assert (approval.service, approval.actor) == ("request-api", "ben")
    assert approval.outcome == "approved"
    wait = approval.waits.approval
    assert wait is not None
    assert (wait.since, wait.until, wait.duration_s) == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=61),
        60.0,
    )
    assert [(d.approver, d.decision, d.stage) for d in wait.decisions] == [
        ("ann", "approved", "peer_review"),
        ("ben", "approved", "peer_review"),
    ]
    assert timeline.steps[2].started_at == approval.finished_at
    assert timeline.status == "completed"


def test_a_denial_ends_the_request_rejected() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.awaiting_approval", "validator", 1, **FACTS, reasons=[])
    journey.add("request.denied", "request-api", 5, approver="approval-clock", justification="late")
    journey.add("request.rejected", "validator", 6, reasons=[{"message": "late", "code": "denied"}])

    timeline = journey.timeline()

    assert [(s.name, s.outcome) for s in timeline.steps] == [
        ("validation", "approval_required"),
        ("approval", "denied"),
        ("validation", "rejected"),
    ]
    assert (timeline.status, timeline.duration_s) == ("rejected", 6.0)


def test_a_backorder_is_a_wait_for_stock_in_the_allocation() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.validated", "validator", 1, **FACTS)
    journey.add("allocation.backordered", "allocator", 2, reason="no laptops in stock")
    provisioned(journey, start=100)

    allocation = journey.timeline().steps[1]

    assert (allocation.name, allocation.started_at) == ("allocation", T0 + timedelta(seconds=1))
    assert allocation.duration_s == 99.0
    stock = allocation.waits.stock
    assert stock is not None and stock.duration_s == 98.0
    assert stock.since == T0 + timedelta(seconds=2)


def test_a_retry_shows_on_the_step_whose_handler_failed() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.validated", "validator", 1, **FACTS)
    journey.add("resource.allocated", "allocator", 2, **FACTS, server_id="pg-1")
    configured = journey.add("resource.configured", "configurator", 3, **FACTS, configuration={})
    journey.add("resource.deployed", "deployer", 7.5, resource_id=RESOURCE, server_id="pg-1")
    journey.add("resource.verified", "deployer", 7.6, resource_id=RESOURCE)
    journey.add("provisioning.completed", "deployer", 7.7, **FACTS, server_id="pg-1")
    journey.add(
        "processing.retried",
        "deployer",
        7.8,
        service="deployer",
        handled_type="resource.configured",
        handled_event_id=configured.event_id,
        attempts=2,
        outcome="succeeded",
        first_failed_at=(T0 + timedelta(seconds=3.3)).isoformat(),
        last_error="TransientFault: transient fault injected at resource.configured",
    )

    timeline = journey.timeline()

    deployment = next(s for s in timeline.steps if s.name == "deployment")
    [retry] = deployment.waits.retries
    assert (retry.service, retry.handled_type, retry.attempts, retry.outcome) == (
        "deployer",
        "resource.configured",
        2,
        "succeeded",
    )
    assert retry.lost_s == 4.5 and "TransientFault" in (retry.last_error or "")
    assert "retry" not in names(timeline)  # a retry is part of a step, not one of its own
    assert timeline.other_retries == [] and timeline.status == "completed"


def test_a_retry_of_an_event_not_on_record_is_placed_by_its_type() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.validated", "validator", 1, **FACTS)
    journey.add(
        "processing.retried",
        "allocator",
        3,
        service="allocator",
        handled_type="request.validated",
        handled_event_id=str(uuid.uuid4()),
        attempts=3,
        outcome="gave_up",
        first_failed_at="not a time",
        last_error="boom",
    )
    journey.add("allocation.failed", "allocator", 2.9, reason="boom", code="internal")
    journey.add(
        "processing.retried",
        "auditor",
        4,
        service="auditor",
        handled_type="allocation.failed",
        attempts=2,
        outcome="succeeded",
    )

    timeline = journey.timeline()

    allocation = timeline.steps[-1]
    assert (allocation.name, allocation.outcome) == ("allocation", "failed")
    [retry] = allocation.waits.retries
    assert (retry.attempts, retry.outcome, retry.lost_s) == (3, "gave_up", None)
    assert [r.service for r in timeline.other_retries] == ["auditor"]
    assert timeline.status == "rolled_back"


def test_a_failure_after_allocation_is_undone_in_compensation_steps() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.validated", "validator", 1, **FACTS)
    journey.add("resource.allocated", "allocator", 2, **FACTS, server_id="pg-1")
    journey.add("resource.configured", "configurator", 3, **FACTS, configuration={})
    journey.add(
        "provisioning.failed",
        "deployer",
        4,
        catalog_item="postgres_database",
        server_id="pg-1",
        reason="target down",
        step="verify",
        code="target_failed",
    )
    journey.add("deployment.rolled_back", "deployer", 5, server_id="pg-1")
    journey.add("configuration.rolled_back", "configurator", 6, server_id="pg-1")
    journey.add("allocation.released", "allocator", 7, reason="rolled back")

    timeline = journey.timeline()

    assert [(s.name, s.outcome, s.compensation) for s in timeline.steps[3:]] == [
        ("verification", "failed", False),
        ("compensation", "compensated", True),
        ("compensation", "compensated", True),
        ("compensation", "compensated", True),
    ]
    assert timeline.steps[3].reason == "target down"
    assert [s.service for s in timeline.steps[4:]] == ["deployer", "configurator", "allocator"]
    assert (timeline.status, timeline.duration_s) == ("rolled_back", 7.0)


def test_an_operators_retry_of_a_failed_undo_starts_the_next_compensation() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("configuration.failed", "configurator", 1, server_id="pg-1", reason="bad template")
    journey.add("compensation.failed", "deployer", 2, step="deploy", reason="target down")
    journey.add("request.compensation_retry_requested", "request-api", 50, requested_by="adam")
    journey.add("deployment.rolled_back", "deployer", 51, server_id="pg-1")

    timeline = journey.timeline()

    retry_request, undone = timeline.steps[-2:]
    assert (retry_request.name, retry_request.actor, retry_request.duration_s) == (
        "compensation",
        "adam",
        0.0,
    )
    assert undone.started_at == retry_request.finished_at and undone.duration_s == 1.0
    assert timeline.status == "compensating"  # the allocator's release is still to come


def test_a_cancel_while_awaiting_approval_ends_it_cancelled() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.awaiting_approval", "validator", 1, **FACTS, reasons=[])
    journey.add("request.cancellation_requested", "request-api", 9, reason="cancelled by rita")

    timeline = journey.timeline()

    assert [(s.name, s.outcome) for s in timeline.steps] == [
        ("validation", "approval_required"),
        ("approval", "unfinished"),
        ("cancellation", "requested"),
    ]
    assert (timeline.status, timeline.duration_s) == ("cancelled", 9.0)


def test_a_request_under_way_shows_its_open_wait_as_pending() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("request.awaiting_approval", "validator", 1, **FACTS, reasons=[])

    timeline = journey.timeline()

    approval = timeline.steps[-1]
    assert (approval.name, approval.outcome, approval.finished_at) == ("approval", "pending", None)
    assert approval.waits.approval is not None and approval.waits.approval.until is None
    assert (timeline.status, timeline.finished_at, timeline.duration_s) == (
        "awaiting_approval",
        None,
        None,
    )


def test_records_after_the_end_and_unknown_types_are_ignored() -> None:
    journey = Journey()
    journey.add("request.submitted", "request-api", 0, **FACTS)
    journey.add("something.new", "newcomer", 0.2, weird=[1, {"x": None}])
    journey.add("request.validated", "validator", 0.5, **FACTS)
    provisioned(journey)
    # Later, about the resource the request made: a re-check, a drift, a lease.
    journey.add("resource.verified", "deployer", 100, resource_id=RESOURCE)
    journey.add("drift.detected", "deployer", 110, resource_id=RESOURCE, differences=["x"])
    journey.add("lease.expiring", "request-api", 120, resource_id=RESOURCE, expires_at="soon")
    journey.add("audit.read", "auditor", 130, query={"odd": True})

    timeline = journey.timeline()

    assert names(timeline)[-1] == "completion" and len(timeline.steps) == 6
    assert (timeline.status, timeline.duration_s) == ("completed", 6.0)


def test_records_recorded_out_of_order_are_taken_in_the_order_they_happened() -> None:
    journey = Journey()
    journey.add("request.validated", "validator", 1, **FACTS)
    journey.add("request.submitted", "request-api", 0, **FACTS)

    timeline = journey.timeline()

    assert [(s.name, s.started_at) for s in timeline.steps] == [("validation", T0)]


def test_no_records_make_an_empty_timeline() -> None:
    timeline = timeline_of(REQUEST, [])
    assert timeline == Timeline(request_id=REQUEST)
    assert timeline.steps == [] and timeline.status is None and timeline.duration_s is None


def test_a_status_never_moves_backwards() -> None:
    assert moves(None, "submitted") and moves("validated", "allocated")
    assert not moves("allocated", "validated") and not moves("completed", "verified")
    assert moves("completed", "compensating")  # a cancel that raced the completion
    assert moves("compensation_failed", "compensating") and not moves("rejected", "validated")
