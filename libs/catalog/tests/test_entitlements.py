"""What a tenant's accounts and resources may be given: the catalog's allow-lists, and the
privileged values and raised limits that wait for an approver, on a provision or a modify."""

from typing import Any

import pytest
from jsonschema import ValidationError

from catalog import CatalogItem, load_catalog
from catalog import policy as rules
from catalog.entitlements import Entitlement, parse_entitlements, rules_for

CATALOG = load_catalog()
ACCOUNT = {"name": "ada_l", "given_name": "Ada", "family_name": "Lovelace", "department": "web"}


def item(name: str) -> CatalogItem:
    found = CATALOG.get(name)
    assert found is not None
    return found


def refused(name: str, parameters: dict[str, Any], tenant: str = "default") -> list[str]:
    return [
        str(p.field)
        for p in rules.check(item(name), name, parameters, tenant=tenant)
        if p.code == "not_entitled"
    ]


def waiting(name: str, parameters: dict[str, Any], **kwargs: Any) -> list[str | None]:
    return [p.field for p in rules.approval_reasons(item(name), parameters, **kwargs)]


def test_a_group_outside_the_allow_list_is_refused_naming_its_place_in_the_list() -> None:
    groups = {**ACCOUNT, "groups": ["web-admins", "domain-admins"]}
    assert refused("directory_account", groups) == ["parameters.groups[1]"]


def test_another_tenants_group_and_department_are_refused() -> None:
    theirs = {**ACCOUNT, "department": "payroll", "groups": ["fin-ledger"]}
    assert refused("directory_account", theirs, tenant="engineering") == [
        "parameters.department",
        "parameters.groups[0]",
    ]
    assert refused("directory_account", theirs, tenant="finance") == []


def test_patterns_allow_a_family_of_groups() -> None:
    assert refused("directory_account", {**ACCOUNT, "groups": ["oncall-ada", "team-web"]}) == []


def test_a_tenant_without_rules_of_its_own_gets_the_defaults() -> None:
    sudo = {**ACCOUNT, "groups": ["domain-admins"]}
    assert refused("directory_account", sudo, tenant="two-seats") == ["parameters.groups[0]"]


def test_database_options_and_vm_sizes_follow_the_tenant() -> None:
    database = {"name": "ledger", "connection_limit": 30, "extensions": ["pgcrypto"]}
    assert refused("postgres_database", database) == []
    assert refused("postgres_database", database, tenant="finance") == [
        "parameters.connection_limit"
    ]
    vm = {"name": "calc", "vcpu": 8, "ram_gb": 8, "image": "ubuntu-24.04", "subnet": "lab"}
    assert sorted(refused("cloud_vm", vm, tenant="finance")) == [
        "parameters.image",
        "parameters.vcpu",
    ]


def test_a_privileged_group_waits_for_an_approver_and_says_which() -> None:
    (reason,) = rules.approval_reasons(
        item("directory_account"), {**ACCOUNT, "groups": ["vpn-users", "sudo"]}
    )
    assert reason.field == "parameters.groups[1]" and "'sudo'" in reason.message
    assert reason.code == "approval_required"
    assert refused("directory_account", {**ACCOUNT, "groups": ["sudo"]}) == []


def test_a_privileged_number_waits_above_its_threshold() -> None:
    vm = {"name": "calc", "vcpu": 2, "ram_gb": 12, "image": "debian-12", "subnet": "lab"}
    assert waiting("cloud_vm", vm, tenant="finance") == ["parameters.ram_gb"]
    assert waiting("cloud_vm", vm) == []


def test_a_modify_raising_a_limit_above_the_threshold_waits_for_an_approver() -> None:
    before = {"name": "orders", "connection_limit": 10}
    raised = {**before, "connection_limit": 50}
    assert waiting("postgres_database", raised, previous=before) == ["parameters.connection_limit"]


def test_a_modify_keeping_or_lowering_an_approved_limit_does_not_wait_again() -> None:
    approved = {"name": "orders", "connection_limit": 40}
    assert waiting("postgres_database", approved, previous=approved) == []
    assert (
        waiting("postgres_database", {**approved, "connection_limit": 30}, previous=approved) == []
    )
    higher = {**approved, "connection_limit": 45}
    assert waiting("postgres_database", higher, previous=approved) == [
        "parameters.connection_limit"
    ]


def test_a_modify_adding_a_privileged_group_waits_and_one_already_held_does_not() -> None:
    held = {**ACCOUNT, "groups": ["sudo"]}
    added = {**held, "groups": ["sudo", "prod-access"]}
    assert waiting("directory_account", added, previous=held) == ["parameters.groups[1]"]
    assert waiting("directory_account", held, previous=held) == []


def test_a_tenants_rule_replaces_the_defaults_for_that_parameter_only() -> None:
    parsed = parse_entitlements(
        {
            "default": {"groups": {"allowed": ["a"]}, "department": {"allowed": ["web"]}},
            "finance": {"groups": {"allowed": ["b"], "privileged": ["c"]}},
        }
    )
    assert rules_for(parsed, "finance") == {
        "groups": Entitlement(allowed=("b",), privileged=("c",)),
        "department": Entitlement(allowed=("web",)),
    }


def test_an_entitlement_rule_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_entitlements({"default": {"groups": {"allow": ["a"]}}})
