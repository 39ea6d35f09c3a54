from catalog import load_catalog


def test_catalog_has_the_first_items_with_schemas():
    catalog = load_catalog()
    assert {"postgres_database", "postgres_schema"} <= set(catalog.items)
    for item in catalog.items.values():
        assert item.public()["parameters"]["type"] == "object"


def test_huge_hostile_values_are_reported_briefly():
    item = load_catalog().get("postgres_schema")
    problems = item.schema_problems({"name": "A" * 50_000})
    assert problems and all(len(p.message) <= 300 for p in problems)
