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


def test_person_names_refuse_control_characters_but_take_any_script():
    item = load_catalog().get("directory_account")
    assert item is not None
    base = {"name": "ada_l", "given_name": "Ada", "family_name": "Lovelace", "department": "web"}
    assert item.schema_problems({**base, "given_name": "Zoë Ólafsdóttir 李"}) == []
    for hostile in ("Ada\nLovelace", "Ada\x00", "Ada\tX", "Ada\x7f"):
        problems = item.schema_problems({**base, "family_name": hostile})
        assert [p.field for p in problems] == ["parameters.family_name"], hostile
