"""What a tenant's accounts and resources may be given: the catalog's allow-lists, a
deployment's own tenants' lists over them, and the privileged values and raised limits that
wait for an approver, on a provision or a modify."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError

from catalog import CatalogError, CatalogItem, load_catalog
from catalog import policy as rules
from catalog.entitlements import DEFAULT_TENANT, Entitlement, merged, parse_entitlements, rules_for

# A deployment's file: the `engineering` and `finance` tenants' own lists.
DEPLOYMENT = Path(__file__).with_name("entitlements.json")
CATALOG = load_catalog(entitlements_file=DEPLOYMENT)
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


def test_a_deployments_tenant_replaces_the_items_rule_per_parameter_and_adds_tenants() -> None:
    packaged = parse_entitlements(
        {
            "default": {"groups": {"allowed": ["a"]}, "role": {"allowed": ["engineer"]}},
            "finance": {"groups": {"allowed": ["b"]}, "department": {"allowed": ["payroll"]}},
        }
    )
    deployment = parse_entitlements(
        {
            "default": {"role": {"allowed": ["*"]}},
            "finance": {"groups": {"allowed": ["fin-*"]}},
            "legal": {"groups": {"allowed": ["law-*"]}},
        }
    )
    assert merged(packaged, deployment) == {
        "default": {"groups": Entitlement(allowed=("a",)), "role": Entitlement(allowed=("*",))},
        "finance": {
            "groups": Entitlement(allowed=("fin-*",)),
            "department": Entitlement(allowed=("payroll",)),
        },
        "legal": {"groups": Entitlement(allowed=("law-*",))},
    }
    assert merged(packaged, {}) == packaged


def test_the_packaged_items_name_no_tenant_but_the_default() -> None:
    for name, found in load_catalog().items.items():
        assert set(found.entitlements) <= {DEFAULT_TENANT}, name


def test_without_a_deployments_file_every_tenant_gets_the_defaults() -> None:
    packaged = load_catalog().get("directory_account")
    assert packaged is not None
    payroll = {**ACCOUNT, "department": "payroll", "groups": ["web-admins"]}
    assert rules.check(packaged, "directory_account", payroll, tenant="finance") == []


def test_the_entitlements_file_is_part_of_the_policy_version() -> None:
    assert CATALOG.version != load_catalog().version
    assert CATALOG.version == load_catalog(entitlements_file=DEPLOYMENT).version


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "Expecting property name"),
        ("[]", "not an object of catalog items"),
        ('{"directory_acount": {}}', "no such catalog item: directory_acount"),
        (
            json.dumps({"directory_account": {"legal": {"groups": {"allow": ["a"]}}}}),
            "directory_account/legal/groups: Additional properties",
        ),
        (
            json.dumps({"cloud_vm": {"legal": {"vcpu": {"maximum": "four"}}}}),
            "cloud_vm/legal/vcpu/maximum: 'four' is not of type 'number'",
        ),
    ],
)
def test_a_bad_entitlements_file_stops_the_load_naming_the_file_and_the_place(
    tmp_path: Path, content: str, complaint: str
) -> None:
    bad = tmp_path / "entitlements.json"
    bad.write_text(content)
    with pytest.raises(CatalogError, match=re.escape(str(bad))) as raised:
        load_catalog(entitlements_file=bad)
    assert complaint in str(raised.value)


def test_a_missing_entitlements_file_stops_the_load_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape(str(tmp_path / "nowhere.json"))):
        load_catalog(entitlements_file=tmp_path / "nowhere.json")
