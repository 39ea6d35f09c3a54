from typing import Any

import pytest

from catalog import ApprovalStage, CatalogItem, load_catalog
from catalog.approvals import DEFAULT_STAGES, InvalidApprovalPolicy, parse_stages


def item(name: str) -> CatalogItem:
    found = load_catalog().get(name)
    assert found is not None
    return found


def test_items_without_stages_have_one_default_stage() -> None:
    assert parse_stages({"when": []}) == DEFAULT_STAGES
    (stage,) = DEFAULT_STAGES
    assert stage.rule == "any" and set(stage.approvers.roles) == {"approver", "admin"}
    assert item("postgres_database").approval_stages == DEFAULT_STAGES


def test_a_big_vm_goes_through_two_stages() -> None:
    peers, budget = item("cloud_vm").approval_stages
    assert (peers.name, peers.rule, peers.quorum) == ("peer_review", "quorum", 2)
    assert peers.escalate_after_s and peers.fallback.roles == ("admin",)
    assert budget.deny_after_s and "dave" in budget.approvers.people


def test_a_stage_survives_its_snapshot() -> None:
    for stage in item("cloud_vm").approval_stages:
        assert ApprovalStage.from_dict(stage.as_dict()) == stage


@pytest.mark.parametrize(
    ("stage", "complaint"),
    [
        ({"name": "x"}, "no roles and no people"),
        ({"name": "x", "roles": ["approver"], "rule": "all"}, "rule 'all'"),
        ({"name": "x", "people": ["a"], "rule": "quorum", "quorum": 2}, "quorum larger"),
        ({"name": "x", "roles": ["approver"], "escalate_after_s": 60}, "go together"),
        (
            {
                "name": "x",
                "roles": ["approver"],
                "escalate_after_s": 60,
                "fallback": {"roles": ["admin"]},
                "deny_after_s": 30,
            },
            "must come after",
        ),
        ({"name": "x", "roles": ["approver"], "rule": "majority"}, "approval.stages"),
        ({"name": "x", "roles": ["approver"], "deny_after_s": -1}, "approval.stages"),
    ],
)
def test_a_policy_nobody_could_satisfy_is_refused(stage: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidApprovalPolicy, match=complaint):
        parse_stages({"stages": [stage]})


def test_stage_names_are_unique() -> None:
    stage = {"name": "x", "roles": ["approver"]}
    with pytest.raises(InvalidApprovalPolicy, match="unique"):
        parse_stages({"stages": [stage, stage]})
