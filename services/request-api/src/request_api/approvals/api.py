"""Routes for approvers: the inbox of stages awaiting them, and their decisions."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from apikeys import Caller
from apikeys.authorization import Action, Subject, documented, require
from catalog import Catalog
from events import ServiceRuntime
from events.http import ProblemError
from request_api.api_common import Decision
from request_api.approvals import repository, rules, workflow
from request_api.approvals.models import PENDING, ApprovalDecision, ApprovalStageRow
from request_api.search import pages

# The inbox reads the tenant's stages in batches of this many, keeping those the caller may
# decide (eligibility is the stage's own rule, decided in Python), until a page is full.
INBOX_BATCH = 200

Status = Literal["pending", "approved", "denied", "withdrawn"]


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("")
    async def inbox(
        caller: CallerDep,
        status: Status = "pending",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=pages.MAX_CURSOR_LENGTH)] = None,
    ) -> dict[str, Any]:
        """Stages the caller may decide (pending: those still waiting for their decision),
        never of their own requests."""
        try:
            position = (
                pages.decode_cursor(cursor, repository.NEWEST_FIRST, datetime) if cursor else None
            )
        except pages.PageProblem as problem:
            raise ProblemError(
                422,
                "Invalid request",
                str(problem),
                errors=[{"field": "query.cursor", "message": str(problem)}],
            ) from problem
        page: list[dict[str, Any]] = []
        last: pages.Position | None = None
        exhausted = False
        async with runtime.tenant_transaction(caller.tenant) as session:
            while len(page) < limit and not exhausted:
                rows = await repository.stages_in(
                    session,
                    tenant=caller.tenant,
                    status=status,
                    not_requested_by=caller.name,
                    limit=INBOX_BATCH,
                    after=position,
                )
                exhausted = len(rows) < INBOX_BATCH
                decisions = await repository.decisions_on(session, [row.id for row in rows])
                for row in rows:
                    position = pages.Position(row.opened_at, row.id)
                    if _in_inbox(row, decisions, caller):
                        page.append(_present(row, decisions))
                        last = position
                        if len(page) == limit:
                            break
        next_cursor = None
        if len(page) == limit and last is not None:
            next_cursor = pages.encode_cursor(repository.NEWEST_FIRST, last)
        return {"items": page, "next_cursor": next_cursor}

    @router.get("/{approval_id}", openapi_extra=documented(Action.READ))
    async def get_approval(approval_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await repository.get_stage(session, approval_id, tenant=caller.tenant)
            if row is None:
                raise ProblemError(404, "Approval not found")
            decisions = await repository.decisions_on(session, [row.id])
        # Its approvers read it, and those who decided it.
        approver = workflow.may_decide(row, caller) or any(
            d.approver == caller.name for d in decisions
        )
        require(caller, Action.READ, Subject(requester=row.requester, approver=approver))
        return _present(row, decisions)

    @router.post("/{approval_id}/approve", openapi_extra=documented(Action.APPROVE))
    async def approve_stage(
        approval_id: uuid.UUID, body: Decision, caller: CallerDep
    ) -> dict[str, Any]:
        return await _decide(approval_id, body, caller, approve=True)

    @router.post("/{approval_id}/deny", openapi_extra=documented(Action.APPROVE))
    async def deny_stage(
        approval_id: uuid.UUID, body: Decision, caller: CallerDep
    ) -> dict[str, Any]:
        return await _decide(approval_id, body, caller, approve=False)

    async def _decide(
        approval_id: uuid.UUID, body: Decision, caller: Caller, *, approve: bool
    ) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await repository.stage_for_update(session, approval_id, tenant=caller.tenant)
            if row is None:
                raise ProblemError(404, "Approval not found")
            await workflow.decide(
                session,
                catalog,
                partial(runtime.publish, session),
                row,
                caller,
                approve=approve,
                justification=body.justification,
            )
            decisions = await repository.decisions_on(session, [row.id])
        return _present(row, decisions)

    return router


def _in_inbox(row: ApprovalStageRow, decisions: list[ApprovalDecision], caller: Caller) -> bool:
    decided_by_caller = any(
        d.approval_id == row.id and d.approver == caller.name for d in decisions
    )
    if row.status == PENDING and decided_by_caller:
        return False
    standing = rules.standing(
        workflow.policy_of(row),
        name=caller.name,
        roles=caller.roles,
        requester=row.requester,
        escalated=row.escalated_at is not None,
    )
    return standing.may_decide or decided_by_caller


def _present(row: ApprovalStageRow, decisions: list[ApprovalDecision]) -> dict[str, Any]:
    stage = workflow.policy_of(row)
    return {
        "id": str(row.id),
        "request_id": str(row.request_id),
        "catalog_item": row.catalog_item,
        "parameters": row.parameters,
        "requester": row.requester,
        "reasons": row.reasons,
        "stage": row.name,
        "position": row.position,
        "rule": stage.rule,
        "quorum": stage.quorum if stage.rule == "quorum" else None,
        "approvers": {"roles": list(stage.approvers.roles), "people": list(stage.approvers.people)},
        "fallback": {"roles": list(stage.fallback.roles), "people": list(stage.fallback.people)},
        "status": row.status,
        "escalated": row.escalated_at is not None,
        "opened_at": row.opened_at.isoformat(),
        "escalate_at": row.escalate_at.isoformat() if row.escalate_at else None,
        "deny_at": row.deny_at.isoformat() if row.deny_at else None,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decisions": [
            {
                "approver": d.approver,
                "decision": d.decision,
                "justification": d.justification,
                "as_fallback": d.as_fallback,
                "at": d.at.isoformat(),
            }
            for d in decisions
            if d.approval_id == row.id
        ],
    }
