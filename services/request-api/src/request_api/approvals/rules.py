"""Pure approval rules: who may decide a stage, whether it is decided, which stage comes next,
and when an undecided one escalates or is denied. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from catalog import ApprovalStage

Outcome = Literal["approved", "denied"]


class Standing(enum.Enum):
    """What a person may do on a stage."""

    OWN_REQUEST = "own_request"
    NOT_ELIGIBLE = "not_eligible"
    APPROVER = "approver"
    FALLBACK = "fallback"

    @property
    def may_decide(self) -> bool:
        return self in (Standing.APPROVER, Standing.FALLBACK)


@dataclass(frozen=True)
class Vote:
    approver: str
    approve: bool
    as_fallback: bool = False


def standing(
    stage: ApprovalStage,
    *,
    name: str,
    roles: Sequence[str],
    requester: str,
    escalated: bool,
) -> Standing:
    """Nobody decides their own request, not even as a fallback. Once escalated, a fallback
    approver decides as one (their approval settles the stage); the stage's own approvers keep
    their say."""
    if name == requester:
        return Standing.OWN_REQUEST
    if escalated and stage.fallback.include(name, tuple(roles)):
        return Standing.FALLBACK
    if stage.approvers.include(name, tuple(roles)):
        return Standing.APPROVER
    return Standing.NOT_ELIGIBLE


def outcome(stage: ApprovalStage, votes: Sequence[Vote]) -> Outcome | None:
    """The stage's decision from the votes so far; None while it is still open. One deny
    denies the stage; a fallback's approval approves it."""
    if any(not vote.approve for vote in votes):
        return "denied"
    approvers = {vote.approver for vote in votes}
    if any(vote.as_fallback for vote in votes):
        return "approved"
    if stage.rule == "all":
        done = set(stage.approvers.people) <= approvers
    elif stage.rule == "quorum":
        done = len(approvers) >= stage.quorum
    else:
        done = bool(approvers)
    return "approved" if done else None


def next_position(stages: Sequence[ApprovalStage], position: int) -> int | None:
    """The stage after `position`, or None when it was the last."""
    following = position + 1
    return following if following < len(stages) else None


def deadlines(
    stage: ApprovalStage, opened_at: datetime, *, cap_s: float | None = None
) -> tuple[datetime | None, datetime | None]:
    """When the stage escalates and when it is denied if still undecided. `cap_s` shortens
    every wait (before escalating, and from escalating to denial) so a test can watch in
    seconds what takes days."""

    def capped(seconds: float) -> timedelta:
        return timedelta(seconds=seconds if cap_s is None else min(seconds, cap_s))

    escalate_at = (
        opened_at + capped(stage.escalate_after_s) if stage.escalate_after_s is not None else None
    )
    if stage.deny_after_s is None:
        return escalate_at, None
    if escalate_at is not None and stage.escalate_after_s is not None:
        return escalate_at, escalate_at + capped(stage.deny_after_s - stage.escalate_after_s)
    return escalate_at, opened_at + capped(stage.deny_after_s)


Due = Literal["escalate", "deny"]


def due(
    now: datetime,
    *,
    escalate_at: datetime | None,
    deny_at: datetime | None,
    escalated: bool,
) -> Due | None:
    """What the clock must do to an undecided stage now; denial wins when both are late."""
    if deny_at is not None and deny_at <= now:
        return "deny"
    if escalate_at is not None and escalate_at <= now and not escalated:
        return "escalate"
    return None
