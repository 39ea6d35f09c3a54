import pytest

from catalog import CatalogItem, load_catalog
from configurator import rules

CATALOG = load_catalog()


def test_database_configuration_uses_defaults():
    driver, config = rules.render(CATALOG.get("postgres_database"), {"name": "orders"})
    assert driver == "postgres"
    assert config == {
        "database": "orders",
        "owner_role": "orders_db_owner",
        "connection_limit": 10,
        "extensions": [],
    }


def test_schema_lives_in_the_shared_database():
    _, config = rules.render(
        CATALOG.get("postgres_schema"), {"name": "team_a", "connection_limit": 3}
    )
    assert (config["database"], config["schema_name"], config["owner_role"]) == (
        "tenant_schemas",
        "team_a",
        "team_a_schema_owner",
    )
    assert config["connection_limit"] == 3


def test_unknown_item_cannot_be_configured():
    with pytest.raises(rules.CannotConfigure):
        rules.render(None, {"name": "x"})


def test_an_item_without_a_template_says_so():
    item = CatalogItem(name="widget", title="Widget", description="", parameters_schema={})
    with pytest.raises(rules.CannotConfigure, match="no configuration template"):
        rules.render(item, {"name": "abc"})


def test_units_and_request_facts_fill_nested_templates():
    item = CatalogItem(
        name="widget",
        title="Widget",
        description="",
        parameters_schema={},
        defaults={"role": "engineer"},
        configuration={
            "driver": "example",
            "template": {
                "seat": "{seat}",
                "groups": ["staff", "tenant-{tenant}", "role-{role}"],
                "tags": {"owner": "{requester}", "count": "{count}"},
            },
        },
    )
    driver, config = rules.render(
        item,
        {"count": 3},
        units={"seat": "figma-seat-007"},
        facts={"tenant": "engineering", "requester": "alice"},
    )
    assert driver == "example"
    assert config == {
        "seat": "figma-seat-007",
        "groups": ["staff", "tenant-engineering", "role-engineer"],
        "tags": {"owner": "alice", "count": 3},
    }


def test_a_list_value_in_a_list_template_joins_it():
    item = CatalogItem(
        name="widget",
        title="Widget",
        description="",
        parameters_schema={},
        defaults={"groups": []},
        configuration={"driver": "example", "template": {"groups": ["staff", "{groups}"]}},
    )
    assert rules.render(item, {})[1] == {"groups": ["staff"]}
    assert rules.render(item, {"groups": ["a", "b"]})[1] == {"groups": ["staff", "a", "b"]}
