"""Metrics of requests on their way through the lifecycle, kept by the request-api, which owns
their statuses.

Histograms and counters are observed where a status changes, once the transaction that
changed it commits. The stuck gauge is counted from the database by a periodic query, so
every replica reports the same numbers: dashboards take max() over instances.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from events.contracts import lifecycle
from events.contracts.requests import RequestStatus
from events.metrics import after_commit
from request_api import repository

# From a step of a few milliseconds to a backorder's day or an approval's week.
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
BUCKETS = (
    *(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    *(_MINUTE, 5 * _MINUTE, 15 * _MINUTE, _HOUR, 4 * _HOUR, _DAY, 7 * _DAY),
)
_ENDS_OF_UNDOING = frozenset({RequestStatus.ROLLED_BACK, RequestStatus.COMPENSATION_FAILED})


@dataclass(frozen=True)
class Transition:
    """A status change as the database made it, with what its metrics need."""

    request_id: uuid.UUID
    tenant: str
    catalog_item: str
    operation: str
    old: RequestStatus
    new: RequestStatus
    submitted_at: datetime
    entered_old_at: datetime
    at: datetime

    @property
    def seconds_in_old(self) -> float:
        return max((self.at - self.entered_old_at).total_seconds(), 0.0)

    @property
    def seconds_since_submitted(self) -> float:
        return max((self.at - self.submitted_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class ProgressMetrics:
    stage_duration: Histogram
    end_to_end: Histogram
    compensations_started: Counter
    compensations_finished: Counter
    stuck: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProgressMetrics:
        metrics = cls(
            stage_duration=Histogram(
                "provisioning_stage_duration_seconds",
                "Time a request spent in a status (`stage`), observed when it leaves it.",
                ["stage", "catalog_item", "operation"],
                buckets=BUCKETS,
                registry=registry,
            ),
            end_to_end=Histogram(
                "provisioning_end_to_end_seconds",
                "Time from submit to the status that ended the request (`outcome`).",
                ["catalog_item", "operation", "outcome"],
                buckets=BUCKETS,
                registry=registry,
            ),
            compensations_started=Counter(
                "provisioning_compensations_started",
                "Requests whose steps began to be undone (including an operator's retry).",
                ["catalog_item"],
                registry=registry,
            ),
            compensations_finished=Counter(
                "provisioning_compensations_finished",
                "Undoing ended: rolled_back, cancelled, or compensation_failed.",
                ["catalog_item", "outcome"],
                registry=registry,
            ),
            stuck=Gauge(
                "provisioning_requests_stuck",
                "Requests in a status that has not ended longer than STUCK_AFTER_S.",
                ["status"],
                registry=registry,
            ),
        )
        for status in lifecycle.IN_FLIGHT:
            metrics.stuck.labels(status)  # 0 until counted: every series exists from the start
        return metrics

    def moved(self, session: AsyncSession, transition: Transition | None) -> None:
        """Observe `transition` once `session` commits (a batch run again counts once)."""
        if transition is not None:
            after_commit(session, partial(self._observe, transition))

    def _observe(self, move: Transition) -> None:
        item, operation = move.catalog_item, move.operation
        self.stage_duration.labels(move.old, item, operation).observe(move.seconds_in_old)
        if move.new in lifecycle.TERMINAL:
            self.end_to_end.labels(item, operation, move.new).observe(move.seconds_since_submitted)
        started, finished = compensation_of(move.old, move.new)
        if started:
            self.compensations_started.labels(item).inc()
        if finished is not None:
            self.compensations_finished.labels(item, finished).inc()


def compensation_of(old: str, new: str) -> tuple[bool, str | None]:
    """Whether a move starts undoing a request, and how undoing ended if it ends it. A step
    that gave up before anything was held goes straight to `rolled_back`: undone at once."""
    if new == RequestStatus.COMPENSATING:
        return True, None
    undoing = old == RequestStatus.COMPENSATING
    if new in _ENDS_OF_UNDOING or (new == RequestStatus.CANCELLED and undoing):
        return not undoing, new
    return False, None


async def count_stuck(
    metrics: ProgressMetrics, session: AsyncSession, *, longer_than: timedelta
) -> None:
    """A periodic job: requests in each status of the way for longer than `longer_than`."""
    stuck = await repository.stuck_requests(session, longer_than=longer_than)
    for status in lifecycle.IN_FLIGHT:
        metrics.stuck.labels(status).set(stuck.get(status, 0))
