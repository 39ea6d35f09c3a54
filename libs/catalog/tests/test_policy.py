from catalog import load_catalog
from catalog import policy as rules

CATALOG = load_catalog()


def fields(problems):
    return [p.field for p in problems]


def test_a_good_request_has_no_problems():
    item = CATALOG.get("postgres_database")
    assert rules.check(item, "postgres_database", {"name": "orders", "connection_limit": 20}) == []


def test_unknown_item_is_named():
    assert fields(rules.check(None, "mainframe", {})) == ["catalog_item"]


def test_schema_problems_name_the_field():
    item = CATALOG.get("postgres_database")
    problems = rules.check(item, "postgres_database", {"name": "x'; DROP TABLE users; --"})
    assert fields(problems) == ["parameters.name"]
    assert fields(rules.check(item, "postgres_database", {})) == ["parameters.name"]
    extra = rules.check(item, "postgres_database", {"name": "abc", "owner": "me"})
    assert fields(extra) == ["parameters"]


def test_policy_refuses_reserved_names_and_big_limits():
    item = CATALOG.get("postgres_database")
    assert fields(rules.check(item, "postgres_database", {"name": "postgres"})) == [
        "parameters.name"
    ]
    assert fields(rules.check(item, "postgres_database", {"name": "pg_stats"})) == [
        "parameters.name"
    ]
    too_many = rules.check(item, "postgres_database", {"name": "big", "connection_limit": 99})
    assert fields(too_many) == ["parameters.connection_limit"]


def test_approval_is_needed_above_the_threshold_only():
    from catalog.policy import approval_reasons

    item = CATALOG.get("postgres_database")
    assert approval_reasons(item, {"name": "big", "connection_limit": 25}) == []
    [reason] = approval_reasons(item, {"name": "big", "connection_limit": 40})
    assert reason.code == "approval_required" and reason.field == "parameters.connection_limit"
