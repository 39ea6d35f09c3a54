"""Sorting and cursors: pure rules of keyset pagination."""

import base64
import contextlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid
from sqlalchemy.dialects import postgresql

from request_api.search.listing import Searchable, requests, resources
from request_api.search.pages import (
    PageProblem,
    Position,
    Sort,
    after,
    decode_cursor,
    encode_cursor,
    order,
    parse_sort,
)

things = Table(
    "things",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("status", String(30), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
SOME_ID = uuid.UUID("2b1c3c1e-53d4-4f6e-8e0b-2f1b7c1d9a10")
MOMENT = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
NEWEST_FIRST = Sort("created_at", descending=True)


def test_sort_names_a_field_and_a_minus_reverses_it() -> None:
    assert parse_sort("created_at", {"created_at"}) == Sort("created_at", descending=False)
    assert parse_sort("-created_at", {"created_at"}) == NEWEST_FIRST
    assert str(NEWEST_FIRST) == "-created_at"


@pytest.mark.parametrize("text", ["tenant", "-parameters", "--created_at", "", "-", "+status"])
def test_only_whitelisted_fields_sort(text: str) -> None:
    with pytest.raises(PageProblem) as raised:
        parse_sort(text, {"created_at", "status"})
    assert raised.value.parameter == "sort"
    assert "created_at, status" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "value_type"),
    [(MOMENT, datetime), ("completed", str), (SOME_ID, uuid.UUID), ("é €/+=", str)],
)
def test_a_cursor_round_trips_its_position(value: object, value_type: type) -> None:
    sort = Sort("field", descending=False)
    cursor = encode_cursor(sort, Position(value, SOME_ID))
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert decode_cursor(cursor, sort, value_type) == Position(value, SOME_ID)


def test_a_cursor_says_which_sort_it_was_made_for() -> None:
    cursor = encode_cursor(NEWEST_FIRST, Position(MOMENT, SOME_ID))
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert payload["sort"] == "-created_at"
    for other in (Sort("created_at", descending=False), Sort("updated_at", descending=True)):
        with pytest.raises(PageProblem) as raised:
            decode_cursor(cursor, other, datetime)
        assert raised.value.parameter == "cursor"
        assert "made for sort=-created_at" in str(raised.value)


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "x" * 2000,
        forged([1, 2]),
        forged({"sort": "-created_at"}),
        forged({"sort": "-created_at", "after": ["yesterday", str(SOME_ID)]}),
        forged({"sort": "-created_at", "after": ["2026-03-01T10:00:00", str(SOME_ID)]}),
        forged({"sort": "-created_at", "after": [MOMENT.isoformat(), "not-an-id"]}),
        forged({"sort": "-created_at", "after": [MOMENT.isoformat()]}),
        forged({"sort": "-created_at", "after": [12, str(SOME_ID)]}),
    ],
)
def test_a_cursor_this_api_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(PageProblem) as raised:
        decode_cursor(cursor, NEWEST_FIRST, datetime)
    assert raised.value.parameter == "cursor"


def test_a_cursor_holds_nothing_the_database_cannot() -> None:
    by_status = Sort("status", descending=False)
    for value in ("\u0000", "a\u0000b"):
        cursor = forged({"sort": "status", "after": [value, str(SOME_ID)]})
        with pytest.raises(PageProblem):
            decode_cursor(cursor, by_status, str)
    far = forged({"sort": "-created_at", "after": ["0001-01-01T00:00:00+14:00", str(SOME_ID)]})
    with pytest.raises(PageProblem):
        decode_cursor(far, NEWEST_FIRST, datetime)


@given(st.text(max_size=300))
def test_any_text_as_a_cursor_is_a_position_or_a_page_problem(text: str) -> None:
    with contextlib.suppress(PageProblem):
        decode_cursor(text, NEWEST_FIRST, datetime)


def compiled(condition: object) -> str:
    return str(
        condition.compile(  # type: ignore[attr-defined]
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )


def test_the_next_page_starts_after_the_last_row_by_value_then_id() -> None:
    position = Position(MOMENT, SOME_ID)
    columns = (things.c.created_at, things.c.id)
    assert compiled(after(position, NEWEST_FIRST, *columns)) == (
        f"(things.created_at, things.id) < ('2026-03-01 10:00:00.123456+00:00', '{SOME_ID}')"
    )
    ascending = Sort("created_at", descending=False)
    assert " > " in compiled(after(position, ascending, *columns))
    assert [compiled(o) for o in order(NEWEST_FIRST, *columns)] == [
        "things.created_at DESC",
        "things.id DESC",
    ]


@pytest.mark.parametrize("searchable", [requests(), resources()], ids=["requests", "resources"])
def test_what_sorts_is_never_null_and_the_tenant_is_never_searchable(
    searchable: Searchable,
) -> None:
    assert "tenant" not in searchable.columns
    for field in searchable.sortable:
        column = searchable.columns[field]
        assert not column.nullable, field
        assert column.type.python_type in (str, datetime, uuid.UUID), field
