"""The pure rules of a SCIM joiner: the role's bundle, and each item's parameters from the
user, valid against the catalog."""

from typing import Any

from catalog import load_catalog
from request_api.scim import onboarding
from request_api.scim.onboarding import UserModel, load_onboarding

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user(**attributes: Any) -> UserModel:
    return UserModel.model_validate({"userName": "Barbara.Jensen@example.com", **attributes})


def test_the_role_is_the_primary_scim_role_else_the_first() -> None:
    assert onboarding.role_of(user()) is None
    assert onboarding.role_of(user(roles=[{"value": "analyst"}, {"value": "x"}])) == "analyst"
    primary = [{"value": "analyst"}, {"value": "engineer", "primary": True}]
    assert onboarding.role_of(user(roles=primary)) == "engineer"


def test_person_names_fit_the_catalog_patterns() -> None:
    assert onboarding.person_base("Barbara.Jensen@example.com") == "barbara_jensen"
    assert onboarding.person_base("3f2a-77@x") == "u3f2a_77"
    assert onboarding.person_base("Zoë") == "zo_user"
    assert len(onboarding.person_base("a" * 80)) == onboarding.PERSON_BASE_LENGTH
    assert onboarding.person_with_tag("bob", "0123456789ab") == "bob_012345"
    assert onboarding.account_name("bob", 1) == "bob"
    assert onboarding.account_name("bob", 3) == "bob_3"


def test_scim_groups_become_directory_groups() -> None:
    assert onboarding.directory_groups(["Web Admins", "web admins", "--", "On-Call.EU"]) == [
        "on-call.eu",
        "web-admins",
    ]


def test_an_engineer_gets_the_engineer_bundle_valid_against_the_catalog() -> None:
    catalog = load_catalog()
    rules = load_onboarding(catalog)
    engineer = user(
        name={"givenName": "Barbara", "familyName": "Jensen"},
        emails=[{"value": "bjensen@example.com", "primary": True}],
        roles=[{"value": "Engineer"}],
        **{ENTERPRISE: {"department": "Web Platform"}},
    )
    requests = onboarding.bundle_requests(
        rules, engineer, person="barbara_jensen", generation=2, groups=["web-admins"]
    )
    by_item = {r["catalog_item"]: r["parameters"] for r in requests}
    assert set(by_item) == {"directory_account", "software_license", "laptop"}
    assert by_item["directory_account"] == {
        "name": "barbara_jensen_2",
        "given_name": "Barbara",
        "family_name": "Jensen",
        "department": "web-platform",
        "role": "engineer",
        "assignee": "barbara_jensen",
        "mail": "bjensen@example.com",
        "groups": ["web-admins"],
    }
    assert by_item["laptop"] == {
        "name": "barbara_jensen_2_laptop",
        "model": "mbp-14",
        "assignee": "barbara_jensen",
    }
    for request in requests:
        item = catalog.get(request["catalog_item"])
        assert item is not None and item.schema_problems(request["parameters"]) == []


def test_a_user_with_little_data_still_gets_a_valid_default_account() -> None:
    catalog = load_catalog()
    requests = onboarding.bundle_requests(
        load_onboarding(catalog),
        user(roles=[{"value": "unknown"}]),
        person="u3f2a",
        generation=1,
        groups=[],
    )
    assert [r["catalog_item"] for r in requests] == ["directory_account"]
    parameters = requests[0]["parameters"]
    assert parameters["department"] == onboarding.DEFAULT_DEPARTMENT
    assert (parameters["given_name"], parameters["family_name"]) == ("u3f2a", "u3f2a")
    assert "mail" not in parameters
    assert catalog.get("directory_account").schema_problems(parameters) == []  # type: ignore[union-attr]
