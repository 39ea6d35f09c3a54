import pytest

from catalog import load_catalog
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
    with pytest.raises(rules.CannotConfigure, match="no configuration template"):
        rules.render(CATALOG.get("software_license"), {"name": "abc", "product": "figma"})
