"""The approval use cases: open a request's first stage, decide a stage, and let the clock
escalate or deny one left undecided. Callers own the transaction; events go to the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from catalog import ApprovalStage, Catalog
from catalog.approvals import DEFAULT_STAGES
from events import Event
from events.contracts.requests import (
    ApprovalDecisionRecorded,
    ApprovalEscalated,
    RequestApproved,
    RequestDenied,
)
from events.contracts.validation import ApprovalRequired
from events.http import ProblemError
from request_api import repository as requests
from request_api.approvals import repository, rules
from request_api.approvals.models import (
    APPROVED,
    DENIED,
    PENDING,
    WITHDRAWN,
    ApprovalDecision,
    ApprovalStageRow,
)

# Who denies a stage nobody decided in time.
APPROVAL_CLOCK = "approval-clock"

Publish = Callable[[Event], object]


def stages_of(catalog: Catalog, catalog_item: str) -> tuple[ApprovalStage, ...]:
    item = catalog.get(catalog_item)
    return item.approval_stages if item is not None else DEFAULT_STAGES


def policy_of(row: ApprovalStageRow) -> ApprovalStage:
    return ApprovalStage.from_dict(row.policy)


def open_first_stage(
    session: AsyncSession, catalog: Catalog, event: ApprovalRequired, *, cap_s: float | None
) -> ApprovalStageRow:
    first = ApprovalStageRow(
        request_id=event.request_id,
        tenant=event.tenant,
        requester=event.requester,
        catalog_item=event.catalog_item,
        parameters=event.parameters,
        reasons=[reason.message for reason in event.reasons],
        time_cap_s=cap_s,
    )
    return _open(session, first, stages_of(catalog, event.catalog_item), position=0)


def _open(
    session: AsyncSession,
    row: ApprovalStageRow,
    stages: tuple[ApprovalStage, ...],
    *,
    position: int,
) -> ApprovalStageRow:
    stage = stages[position]
    now = datetime.now(UTC)
    row.id = uuid.uuid4()
    row.position = position
    row.name = stage.name
    row.policy = stage.as_dict()
    row.status = PENDING
    row.opened_at = now
    row.escalate_at, row.deny_at = rules.deadlines(stage, now, cap_s=row.time_cap_s)
    return repository.add_stage(session, row)


def _next_row(previous: ApprovalStageRow) -> ApprovalStageRow:
    return ApprovalStageRow(
        request_id=previous.request_id,
        tenant=previous.tenant,
        requester=previous.requester,
        catalog_item=previous.catalog_item,
        parameters=previous.parameters,
        reasons=previous.reasons,
        time_cap_s=previous.time_cap_s,
    )


async def decide(
    session: AsyncSession,
    catalog: Catalog,
    publish: Publish,
    row: ApprovalStageRow,
    caller: Caller,
    *,
    approve: bool,
    justification: str,
) -> None:
    """Record the caller's decision on a stage (locked by the caller's query) and publish what
    it means: a vote, the next stage, or the request approved or denied."""
    standing = rules.standing(
        policy_of(row),
        name=caller.name,
        roles=caller.roles,
        requester=row.requester,
        escalated=row.escalated_at is not None,
    )
    await _refuse_unless_open_to(session, row, caller, standing)
    decision = repository.add_decision(
        session,
        ApprovalDecision(
            id=uuid.uuid4(),
            approval_id=row.id,
            tenant=row.tenant,
            approver=caller.name,
            decision="approve" if approve else "deny",
            justification=justification,
            as_fallback=standing is rules.Standing.FALLBACK,
            at=datetime.now(UTC),
        ),
    )
    votes = [_vote(d) for d in await repository.decisions_on(session, [row.id])]
    await _settle(session, catalog, publish, row, decision, rules.outcome(policy_of(row), votes))


async def _refuse_unless_open_to(
    session: AsyncSession, row: ApprovalStageRow, caller: Caller, standing: rules.Standing
) -> None:
    if standing is rules.Standing.OWN_REQUEST:
        raise ProblemError(403, "Nobody decides on their own request")
    if not standing.may_decide:
        raise ProblemError(403, "Not an approver of this stage", f"stage {row.name!r}")
    if row.status != PENDING or not await repository.request_still_awaiting(
        session, row.request_id
    ):
        raise ProblemError(409, "Already decided", "This stage is no longer awaiting a decision.")
    earlier = await repository.decisions_on(session, [row.id])
    if any(decision.approver == caller.name for decision in earlier):
        raise ProblemError(409, "Already decided", "You decided this stage already.")


async def _settle(
    session: AsyncSession,
    catalog: Catalog,
    publish: Publish,
    row: ApprovalStageRow,
    decision: ApprovalDecision,
    result: rules.Outcome | None,
) -> None:
    """One event per decision: the one that settles the request is `RequestApproved` or
    `RequestDenied` (the existing pipeline reacts to those), any other a recorded vote."""
    if result == "denied":
        _close(row, DENIED, decision.at)
        publish(
            RequestDenied(
                request_id=row.request_id,
                approver=decision.approver,
                justification=decision.justification,
                stage=row.name,
            )
        )
        return
    if result == "approved":
        _close(row, APPROVED, decision.at)
        # The stages that follow are the catalog's current ones.
        stages = stages_of(catalog, row.catalog_item)
        following = rules.next_position(stages, row.position)
        if following is None:
            publish(await _approved(session, row, decision.approver, decision.justification))
            return
        _open(session, _next_row(row), stages, position=following)
    publish(
        ApprovalDecisionRecorded(
            request_id=row.request_id,
            approval_id=row.id,
            stage=row.name,
            approver=decision.approver,
            decision="approve" if decision.decision == "approve" else "deny",
            justification=decision.justification,
            as_fallback=decision.as_fallback,
            stage_status=row.status,
            at=decision.at,
        )
    )


async def _approved(
    session: AsyncSession, row: ApprovalStageRow, approver: str, justification: str
) -> RequestApproved:
    request = await requests.get_request(session, row.request_id, tenant=row.tenant)
    assert request is not None  # a stage is only opened for a request of the read model
    return RequestApproved(
        request_id=request.id,
        catalog_item=request.catalog_item,
        parameters=request.parameters,
        requester=request.requester,
        tenant=request.tenant,
        operation=request.operation,
        resource_id=request.resource_id,
        rotate_credentials=request.rotate_credentials,
        approver=approver,
        justification=justification,
        stage=row.name,
    )


async def withdraw(session: AsyncSession, request_id: uuid.UUID, *, tenant: str) -> None:
    """The request was cancelled while it waited: its open stage takes no more decisions."""
    row = await repository.pending_stage_of_request(session, request_id, tenant=tenant)
    if row is not None:
        _close(row, WITHDRAWN, datetime.now(UTC))


async def tick(session: AsyncSession, publish: Publish) -> None:
    """The approval clock: escalate stages undecided too long, deny those still undecided."""
    now = datetime.now(UTC)
    for row in await repository.claim_due_stages(session, now=now):
        if not await repository.request_still_awaiting(session, row.request_id):
            _close(row, WITHDRAWN, now)
            continue
        action = rules.due(
            now,
            escalate_at=row.escalate_at,
            deny_at=row.deny_at,
            escalated=row.escalated_at is not None,
        )
        if action == "deny":
            _close(row, DENIED, now)
            publish(
                RequestDenied(
                    request_id=row.request_id,
                    approver=APPROVAL_CLOCK,
                    justification=f"stage {row.name!r} was not decided in time",
                    stage=row.name,
                )
            )
        elif action == "escalate":
            row.escalated_at = now
            fallback = policy_of(row).fallback
            publish(
                ApprovalEscalated(
                    request_id=row.request_id,
                    approval_id=row.id,
                    stage=row.name,
                    fallback_roles=list(fallback.roles),
                    fallback_people=list(fallback.people),
                    deny_at=row.deny_at,
                    at=now,
                )
            )


def _close(row: ApprovalStageRow, status: str, at: datetime) -> None:
    row.status = status
    row.decided_at = at


def _vote(decision: ApprovalDecision) -> rules.Vote:
    return rules.Vote(
        approver=decision.approver,
        approve=decision.decision == "approve",
        as_fallback=decision.as_fallback,
    )


def may_decide(row: ApprovalStageRow, caller: Caller) -> bool:
    """Whether the stage's own rule lets the caller decide it (the authorization table's
    `approver`)."""
    return rules.standing(
        policy_of(row),
        name=caller.name,
        roles=caller.roles,
        requester=row.requester,
        escalated=row.escalated_at is not None,
    ).may_decide
