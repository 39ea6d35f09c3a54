from datetime import UTC, datetime, timedelta

from catalog import ApprovalStage, Approvers
from request_api.approvals.rules import (
    Standing,
    Vote,
    deadlines,
    due,
    next_position,
    outcome,
    standing,
)

PEERS = ApprovalStage(
    name="peer_review",
    approvers=Approvers(roles=("approver",)),
    rule="quorum",
    quorum=2,
    escalate_after_s=3600,
    deny_after_s=3 * 3600,
    fallback=Approvers(roles=("admin",), people=("cto",)),
)
BOARD = ApprovalStage(
    name="board", approvers=Approvers(people=("ann", "ben")), rule="all", deny_after_s=600
)
ANYONE = ApprovalStage(name="approval", approvers=Approvers(roles=("approver", "admin")))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_approvers_by_role_or_by_name_and_never_the_requester() -> None:
    def of(
        name: str,
        roles: list[str],
        *,
        requester: str = "rita",
        escalated: bool = False,
        stage: ApprovalStage = PEERS,
    ) -> Standing:
        return standing(stage, name=name, roles=roles, requester=requester, escalated=escalated)

    assert of("ann", ["approver"]) is Standing.APPROVER
    assert of("ann", ["requester"]) is Standing.NOT_ELIGIBLE
    assert of("ben", [], stage=BOARD) is Standing.APPROVER
    assert of("rita", ["approver", "admin"]) is Standing.OWN_REQUEST
    assert of("rita", ["admin"], escalated=True) is Standing.OWN_REQUEST


def test_fallback_approvers_decide_only_once_the_stage_escalated() -> None:
    def of(name: str, roles: list[str], escalated: bool) -> Standing:
        return standing(PEERS, name=name, roles=roles, requester="rita", escalated=escalated)

    assert of("adam", ["admin"], escalated=False) is Standing.NOT_ELIGIBLE
    assert of("adam", ["admin"], escalated=True) is Standing.FALLBACK
    assert of("cto", [], escalated=True) is Standing.FALLBACK
    assert of("ann", ["approver"], escalated=True) is Standing.APPROVER
    assert Standing.FALLBACK.may_decide and not Standing.OWN_REQUEST.may_decide


def test_any_rule_one_approval_decides() -> None:
    assert outcome(ANYONE, []) is None
    assert outcome(ANYONE, [Vote("ann", approve=True)]) == "approved"


def test_quorum_counts_distinct_approvers() -> None:
    assert outcome(PEERS, [Vote("ann", approve=True)]) is None
    assert outcome(PEERS, [Vote("ann", True), Vote("ann", True)]) is None
    assert outcome(PEERS, [Vote("ann", True), Vote("ben", True)]) == "approved"


def test_all_rule_needs_every_person_named() -> None:
    assert outcome(BOARD, [Vote("ann", True)]) is None
    assert outcome(BOARD, [Vote("ann", True), Vote("ben", True)]) == "approved"


def test_one_deny_denies_and_a_fallback_approval_settles() -> None:
    assert outcome(PEERS, [Vote("ann", True), Vote("ben", approve=False)]) == "denied"
    assert outcome(BOARD, [Vote("ann", approve=False)]) == "denied"
    assert outcome(PEERS, [Vote("adam", approve=True, as_fallback=True)]) == "approved"


def test_next_stage_until_the_last() -> None:
    stages = (PEERS, BOARD)
    assert next_position(stages, 0) == 1
    assert next_position(stages, 1) is None
    assert next_position((ANYONE,), 0) is None


def test_deadlines_from_the_catalog_and_under_a_cap() -> None:
    assert deadlines(ANYONE, T0) == (None, None)
    assert deadlines(BOARD, T0) == (None, T0 + timedelta(seconds=600))
    assert deadlines(PEERS, T0) == (T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    # Each wait is capped on its own: escalation first, denial one more wait later.
    assert deadlines(PEERS, T0, cap_s=4) == (T0 + timedelta(seconds=4), T0 + timedelta(seconds=8))
    assert deadlines(BOARD, T0, cap_s=4) == (None, T0 + timedelta(seconds=4))
    assert deadlines(ANYONE, T0, cap_s=4) == (None, None)


def test_escalation_then_denial_falls_due() -> None:
    escalate_at, deny_at = deadlines(PEERS, T0)
    at = {"escalate_at": escalate_at, "deny_at": deny_at}
    assert due(T0, **at, escalated=False) is None
    assert due(T0 + timedelta(hours=1), **at, escalated=False) == "escalate"
    assert due(T0 + timedelta(hours=2), **at, escalated=True) is None
    assert due(T0 + timedelta(hours=3), **at, escalated=True) == "deny"
    # A clock that was away denies rather than escalating first.
    assert due(T0 + timedelta(hours=4), **at, escalated=False) == "deny"
    assert due(T0 + timedelta(days=9), escalate_at=None, deny_at=None, escalated=False) is None
