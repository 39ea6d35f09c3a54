"""The authorization table: who may do what to an object, and the README's copy of it."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys import Caller
from apikeys.authorization import (
    NOBODY,
    OPENAPI_EXTENSION,
    WHO_MAY,
    Action,
    Forbidden,
    Relation,
    Subject,
    documented,
    may,
    relations,
    require,
)

README = Path(__file__).resolve().parents[3] / "README.md"


def caller(name: str = "bob", roles: tuple[str, ...] = ("requester",), scopes=()) -> Caller:
    return Caller(key_id="k", name=name, scopes=tuple(scopes), tenant="engineering", roles=roles)


ALICES = Subject(requester="alice", owner="alice")


def test_every_action_names_who_may():
    assert set(WHO_MAY) == set(Action)
    assert all(WHO_MAY[action] for action in Action)


def test_a_colleague_with_no_relation_may_not_touch_anothers_resource():
    bob = caller("bob")
    for action in (
        Action.READ,
        Action.REVEAL_CREDENTIALS,
        Action.MODIFY,
        Action.ROTATE_CREDENTIALS,
        Action.EXTEND,
        Action.DEPROVISION,
        Action.REMEDIATE,
        Action.CANCEL,
    ):
        assert not may(bob, action, ALICES), action


def test_the_owner_and_the_requester_hold_their_resource():
    assert may(caller("alice"), Action.REVEAL_CREDENTIALS, ALICES)
    handed_over = Subject(requester="manager", owner="alice")
    assert may(caller("manager"), Action.DEPROVISION, handed_over)
    assert may(caller("alice"), Action.DEPROVISION, handed_over)


def test_an_admin_may_rotate_a_colleagues_secret_but_never_reveal_it():
    admin = caller("root", roles=("admin",))
    assert may(admin, Action.ROTATE_CREDENTIALS, ALICES)
    assert not may(admin, Action.REVEAL_CREDENTIALS, ALICES)


def test_an_auditor_reads_but_changes_nothing():
    auditor = caller("dave", roles=("auditor",))
    assert may(auditor, Action.READ, ALICES)
    assert may(auditor, Action.READ_AUDIT, ALICES)
    assert may(auditor, Action.READ_AUDIT_REPORTS)
    for action in (Action.MODIFY, Action.DEPROVISION, Action.CANCEL, Action.MANAGE_KEYS):
        assert not may(auditor, action, ALICES), action


def test_only_the_operator_manages_operator_keys_and_shared_pools():
    admin = caller("root", roles=("admin",))
    operator = caller("bootstrap", roles=("admin",), scopes=("platform",))
    for action in (Action.MANAGE_OPERATOR_KEYS, Action.MANAGE_SHARED_POOLS):
        assert not may(admin, action)
        assert may(operator, action)
    assert may(admin, Action.MANAGE_TENANT_POOLS)


def test_approving_is_for_the_stages_approvers_alone():
    admin = caller("root", roles=("admin",))
    assert not may(admin, Action.APPROVE, ALICES)
    assert may(caller("bob", roles=("approver",)), Action.APPROVE, Subject(approver=True))


def test_a_refusal_is_a_403_naming_who_may():
    with pytest.raises(Forbidden) as refused:
        require(caller("bob"), Action.REVEAL_CREDENTIALS, ALICES)
    assert refused.value.status_code == 403
    assert refused.value.explanation == "Only its owner, requester may reveal credentials."


def test_the_openapi_extension_carries_the_action_and_who_may():
    assert documented(Action.OFFBOARD) == {
        OPENAPI_EXTENSION: {"action": "offboard", "who": ["admin"]}
    }


people = st.sampled_from(["alice", "bob", "carol", None])


@given(name=st.sampled_from(["alice", "bob"]), requester=people, owner=people, beneficiary=people)
def test_a_person_relation_holds_exactly_when_the_object_names_the_caller(
    name, requester, owner, beneficiary
):
    found = relations(
        caller(name, roles=()),
        Subject(requester=requester, owner=owner, beneficiary=beneficiary),
    )
    assert (Relation.REQUESTER in found) == (requester == name)
    assert (Relation.OWNER in found) == (owner == name)
    assert (Relation.BENEFICIARY in found) == (beneficiary == name)
    assert not found & {Relation.ADMIN, Relation.AUDITOR, Relation.OPERATOR, Relation.APPROVER}


def test_roles_alone_give_no_person_relation():
    found = relations(caller("x", roles=("admin", "auditor", "approver")), NOBODY)
    assert found == {Relation.ADMIN, Relation.AUDITOR}


def test_the_readme_shows_the_table_as_the_code_has_it():
    text = README.read_text()
    section = text[text.index("| action | who may |") :]
    rows = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            break
        action, who = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows[action.strip("`")] = set(re.findall(r"[a-z_]+", who))
    assert rows == {action.value: {str(r) for r in WHO_MAY[action]} for action in Action}
