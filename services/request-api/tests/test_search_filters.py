"""The SCIM filter translator, compiled for PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Uuid
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from request_api.search.filters import (
    MAX_COMPARISONS,
    MAX_LENGTH,
    MAX_NESTING,
    FilterProblem,
    case_insensitive,
    scim_filter_to_sql,
)

things = Table(
    "things",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("status", String(30), nullable=False),
    Column("catalog_item", String(100), nullable=False),
    Column("user_name", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("monthly_cost", Float, nullable=False),
    Column("active", Boolean, nullable=False),
)
ATTRIBUTES: dict[str, ColumnElement[Any]] = {
    "id": things.c.id,
    "status": things.c.status,
    "catalog_item": things.c.catalog_item,
    "userName": case_insensitive(things.c.user_name),
    "urn:ietf:params:scim:schemas:core:2.0:User:userName": case_insensitive(things.c.user_name),
    "name.givenName": things.c.user_name,
    "created_at": things.c.created_at,
    "expires_at": things.c.expires_at,
    "version": things.c.version,
    "monthly_cost": things.c.monthly_cost,
    "active": things.c.active,
}
SOME_ID = uuid.UUID("2b1c3c1e-53d4-4f6e-8e0b-2f1b7c1d9a10")


def sql(expression: str) -> str:
    condition = scim_filter_to_sql(expression, ATTRIBUTES)
    compiled = condition.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    # The psycopg-style dialect doubles % in literals; the tests read SQL as PostgreSQL does.
    return str(compiled).replace("%%", "%")


def params(expression: str) -> dict[str, Any]:
    condition = scim_filter_to_sql(expression, ATTRIBUTES)
    return dict(condition.compile(dialect=postgresql.dialect()).params)


def problem(expression: str) -> str:
    with pytest.raises(FilterProblem) as raised:
        scim_filter_to_sql(expression, ATTRIBUTES)
    return str(raised.value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('status eq "completed"', "things.status = 'completed'"),
        ('status ne "completed"', "things.status IS DISTINCT FROM 'completed'"),
        ('status gt "b"', "things.status > 'b'"),
        ('status ge "b"', "things.status >= 'b'"),
        ('status lt "b"', "things.status < 'b'"),
        ('status le "b"', "things.status <= 'b'"),
        ('status co "omp"', "things.status LIKE '%' || 'omp' || '%' ESCAPE '/'"),
        ('status sw "comp"', "things.status LIKE 'comp' || '%' ESCAPE '/'"),
        ('status ew "ted"', "things.status LIKE '%' || 'ted' ESCAPE '/'"),
        ("status pr", "things.status IS NOT NULL AND things.status != ''"),
        ("expires_at pr", "things.expires_at IS NOT NULL"),
        ("expires_at eq null", "things.expires_at IS NULL"),
        ("expires_at ne null", "things.expires_at IS NOT NULL"),
        ("version gt 41", "things.version > 41"),
        ("monthly_cost le -2.5e1", "things.monthly_cost <= -25.0"),
        ("active eq true", "things.active = true"),
        ("active ne false", "things.active IS DISTINCT FROM false"),
        (f'id eq "{SOME_ID}"', f"things.id = '{SOME_ID}'"),
        ('id sw "2B1C"', "CAST(things.id AS VARCHAR) ILIKE '2B1C' || '%' ESCAPE '/'"),
    ],
)
def test_each_operator_for_each_type(expression: str, expected: str) -> None:
    assert sql(expression) == expected


def test_attribute_names_and_operators_ignore_case() -> None:
    assert sql('STATUS EQ "completed"') == sql('status eq "completed"')
    assert sql('Catalog_Item Sw "postgres"') == sql('catalog_item sw "postgres"')
    assert sql("NOT (Status PR) AND Active eq true") == sql("not (status pr) and active eq true")


def test_values_keep_their_case() -> None:
    assert params('status eq "Completed"') == {"status_1": "Completed"}


def test_like_wildcards_in_values_are_matched_literally() -> None:
    assert params('status co "50%_off/"') == {"status_1": "50/%/_off//"}
    assert params('status sw "_"')["status_1"] == "/_"
    assert params('status ew "%"')["status_1"] == "/%"


def test_a_case_insensitive_attribute_compares_lowered() -> None:
    assert sql('userName eq "Bjensen"') == "lower(things.user_name) = lower('Bjensen')"
    assert sql('userName co "jen"') == "things.user_name ILIKE '%' || 'jen' || '%' ESCAPE '/'"


def test_uri_qualified_and_sub_attributes_are_looked_up_whole() -> None:
    qualified = 'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "b"'
    assert sql(qualified) == sql('userName eq "b"')
    assert sql('name.givenName eq "Barbara"') == "things.user_name = 'Barbara'"
    assert "unknown attribute 'name.familyName'" in problem('name.familyName eq "Jensen"')


def test_and_binds_tighter_than_or() -> None:
    a, b, c = ('status eq "a"', 'status eq "b"', 'status eq "c"')
    assert sql(f"{a} or {b} and {c}") == sql(f"{a} or ({b} and {c})")
    assert sql(f"{a} and {b} or {c}") == sql(f"({a} and {b}) or {c}")
    assert sql(f"{a} or {b} and {c}") != sql(f"({a} or {b}) and {c}")
    assert sql(f"({a} or {b}) and {c}") == (
        "(things.status = 'a' OR things.status = 'b') AND things.status = 'c'"
    )


def test_a_long_chain_regroups_in_order() -> None:
    chain = " or ".join(f'status eq "{n}" and version eq {n}' for n in range(4))
    expected = " OR ".join(f"things.status = '{n}' AND things.version = {n}" for n in range(4))
    assert sql(chain) == expected


def test_not_is_two_valued() -> None:
    # A comparison with a NULL expiry is false for SCIM, so `not` of it must match that row.
    assert sql('not (expires_at gt "2026-01-01T00:00:00Z")') == (
        "(things.expires_at > '2026-01-01 00:00:00+00:00') IS NOT true"
    )
    assert sql('not (not (status eq "a"))') == "((things.status = 'a') IS NOT true) IS NOT true"


def test_dates_compare_as_aware_datetimes() -> None:
    assert params('created_at ge "2026-03-01T10:00:00+02:00"') == {
        "created_at_1": datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    }
    assert params('created_at lt "2026-03-01T08:00:00.123456Z"') == {
        "created_at_1": datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
    }


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ('created_at gt "2026-03-01T10:00:00"', "date-time with its offset"),
        ('created_at gt "2026-03-01"', "date-time with its offset"),
        ('created_at gt "yesterday"', "date-time with its offset"),
        ("created_at gt 20260301", "date-time with its offset"),
        ('created_at co "2026"', "co does not apply"),
        ('created_at gt "0001-01-01T00:00:00+14:00"', "date-time with its offset"),
        ("status eq 1", "status compares with a string, not 1"),
        ("status eq true", "status compares with a string, not true"),
        ('version eq "1"', 'version compares with a number, not "1"'),
        ("version eq true", "version compares with a number, not true"),
        ("version sw 1", "sw does not apply"),
        ('active eq "true"', "active compares with true or false"),
        ("active gt false", "gt does not apply"),
        ('id eq "not-an-id"', "an id (a UUID)"),
        ("id eq 7", "an id (a string)"),
        ("status gt null", "only eq and ne compare with null"),
    ],
)
def test_values_of_the_wrong_type_are_refused(expression: str, words: str) -> None:
    assert words in problem(expression)


def test_unknown_attributes_are_refused_naming_them_and_the_known() -> None:
    message = problem('tenant eq "other"')
    assert "unknown attribute 'tenant'" in message
    assert "catalog_item" in message and "status" in message


def test_complex_attribute_filters_are_refused() -> None:
    assert "complex attributes" in problem('emails[type eq "work"]')
    assert "complex attributes" in problem('emails[type eq "work"].value eq "x"')


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("status eq", "ends too early"),
        ('status eq "a" and', "ends too early"),
        ('(status eq "a"', "ends too early"),
        ('status eq "a")', "unexpected ')' at character 14"),
        ('status regex "a"', "unexpected 'regex' at character 8"),
        ("status eq 'a'", "Illegal character"),
        ('status eq "a" status eq "b"', "unexpected 'status'"),
        ('not status eq "a"', "unexpected 'status'"),
        ('status eq "unterminated', "Illegal character"),
        ('status eq "bad \\q escape"', "not a valid JSON value"),
        ('status eq "nul \\u0000"', "characters a string cannot"),
        ('status eq "half \\ud800"', "characters a string cannot"),
        ("version eq 1e999", "out of range"),
        ("version eq 01", "unexpected '1'"),
    ],
)
def test_syntax_errors_say_where(expression: str, words: str) -> None:
    assert words in problem(expression)


def test_json_escapes_in_strings_are_decoded() -> None:
    assert params(r'status eq "say \"hi\" \u00e9\\"') == {"status_1": 'say "hi" é\\'}


def test_keywords_are_whole_words() -> None:
    attributes = {"nullable": things.c.status, "trueName": things.c.catalog_item}
    condition = scim_filter_to_sql('nullable eq "x" and trueName pr', attributes)
    assert "things.status" in str(condition) and "things.catalog_item" in str(condition)


def test_bounds_keep_a_filter_cheap() -> None:
    assert "longer than" in problem('status eq "' + "a" * MAX_LENGTH + '"')
    deep = "(" * (MAX_NESTING + 1) + 'status eq "a"' + ")" * (MAX_NESTING + 1)
    assert "nests deeper" in problem(deep)
    many = " or ".join(['status eq "a"'] * (MAX_COMPARISONS + 1))
    assert "more than" in problem(many)
    assert sql(" or ".join(['status eq "a"'] * MAX_COMPARISONS))


@given(st.text(max_size=200))
def test_any_text_is_a_condition_or_a_filter_problem(text: str) -> None:
    try:
        condition = scim_filter_to_sql(text, ATTRIBUTES)
    except FilterProblem:
        return
    condition.compile(dialect=postgresql.dialect())


# fmt: off
TOKENS = st.sampled_from([
    "status", "STATUS", "version", "active", "created_at", "expires_at", "id", "userName",
    "name.givenName", "urn:x:y:status", "emails", "eq", "ne", "co", "sw", "ew", "gt", "ge",
    "lt", "le", "pr", "and", "or", "not", "(", ")", "[", "]", ".value", "true", "false", "null",
    "0", "-1", "42", "2.5", "'", "$", " ", '"a"', '"%_"', '"2026-01-01T00:00:00Z"',
    f'"{SOME_ID}"', '"\\u0000"', '"\\"',
])
# fmt: on


@given(st.lists(TOKENS, max_size=25))
def test_near_grammatical_input_is_a_condition_or_a_filter_problem(tokens: list[str]) -> None:
    try:
        condition = scim_filter_to_sql(" ".join(tokens), ATTRIBUTES)
    except FilterProblem:
        return
    condition.compile(dialect=postgresql.dialect())


COMPARISONS = st.sampled_from(
    [
        'status eq "completed"',
        'catalog_item sw "postgres"',
        "version ge 2",
        "expires_at pr",
        'created_at lt "2026-01-01T00:00:00Z"',
        "active eq false",
    ]
)
FILTERS = st.recursive(
    COMPARISONS,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join),
        inner.map(lambda f: f"({f})"),
        inner.map(lambda f: f"not ({f})"),
    ),
    max_leaves=12,
)


@given(FILTERS)
def test_well_formed_filters_always_translate(expression: str) -> None:
    condition = scim_filter_to_sql(expression, ATTRIBUTES)
    condition.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
