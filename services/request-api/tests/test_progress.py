import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from events.contracts.lifecycle import IN_FLIGHT
from events.contracts.requests import RequestStatus
from request_api.progress import ProgressMetrics, Transition, compensation_of

SUBMITTED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def move(old: str, new: str, *, entered_after_s: float, at_s: float) -> Transition:
    return Transition(
        request_id=uuid.uuid4(),
        tenant="default",
        catalog_item="postgres_schema",
        operation="provision",
        old=RequestStatus(old),
        new=RequestStatus(new),
        submitted_at=SUBMITTED_AT,
        entered_old_at=SUBMITTED_AT + timedelta(seconds=entered_after_s),
        at=SUBMITTED_AT + timedelta(seconds=at_s),
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("submitted", "validated", (False, None)),
        ("deployed", "compensating", (True, None)),
        ("compensating", "rolled_back", (False, "rolled_back")),
        ("compensating", "compensation_failed", (False, "compensation_failed")),
        ("compensating", "cancelled", (False, "cancelled")),
        ("validated", "rolled_back", (True, "rolled_back")),  # gave up, nothing held
        ("awaiting_approval", "cancelled", (False, None)),  # nothing to undo
        ("verified", "completed", (False, None)),
    ],
)
def test_what_counts_as_a_compensation(old: str, new: str, expected: tuple[bool, str | None]):
    assert compensation_of(old, new) == expected


def test_moves_are_observed_once_their_transaction_commits():
    registry = CollectorRegistry()
    metrics = ProgressMetrics.create(registry)
    sync = Session(create_engine("sqlite://"))
    session = SimpleNamespace(sync_session=sync)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert all(sample("provisioning_requests_stuck", status=s) == 0 for s in IN_FLIGHT)
    with sync.begin():
        metrics.moved(session, move("submitted", "validated", entered_after_s=0, at_s=0.3))
        metrics.moved(session, move("deployed", "compensating", entered_after_s=5, at_s=7))
        metrics.moved(session, None)
        assert (
            sample("provisioning_compensations_started_total", catalog_item="postgres_schema")
            is None
        )
    metrics.moved(session, move("compensating", "rolled_back", entered_after_s=7, at_s=9))
    with sync.begin():
        pass
    item = {"catalog_item": "postgres_schema", "operation": "provision"}
    assert sample("provisioning_stage_duration_seconds_sum", stage="submitted", **item) == 0.3
    assert sample("provisioning_stage_duration_seconds_sum", stage="deployed", **item) == 2
    assert sample("provisioning_stage_duration_seconds_count", stage="compensating", **item) == 1
    assert sample("provisioning_end_to_end_seconds_sum", outcome="rolled_back", **item) == 9
    assert sample("provisioning_end_to_end_seconds_count", outcome="completed", **item) is None
    started = sample("provisioning_compensations_started_total", catalog_item="postgres_schema")
    finished = sample(
        "provisioning_compensations_finished_total",
        catalog_item="postgres_schema",
        outcome="rolled_back",
    )
    assert started == 1 and finished == 1
