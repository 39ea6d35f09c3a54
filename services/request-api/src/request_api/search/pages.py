"""Pure: sorting and keyset pagination. A page continues after the last row of the one before,
by its sort value and then its id, so rows that arrive meanwhile neither repeat nor push others
out. The cursor is opaque to callers: base64url JSON of the sort it was made for and where the
page ended."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import literal, tuple_
from sqlalchemy.sql.elements import ColumnElement

MAX_CURSOR_LENGTH = 1000


class PageProblem(ValueError):
    """A sort or cursor that cannot be used; `parameter` names the query parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def parse_sort(text: str, sortable: Collection[str]) -> Sort:
    """`field` sorts ascending, `-field` descending; only the `sortable` fields."""
    field = text.removeprefix("-")
    if field not in sortable:
        known = ", ".join(sorted(sortable))
        raise PageProblem("sort", f"cannot sort by {field!r}; sort by one of: {known}")
    return Sort(field, descending=text.startswith("-"))


@dataclass(frozen=True)
class Position:
    """Where a page ended: its last row's sort value and id."""

    value: Any
    row_id: uuid.UUID


def encode_cursor(sort: Sort, position: Position) -> str:
    value = position.value
    plain = value.isoformat() if isinstance(value, datetime) else str(value)
    payload = {"sort": str(sort), "after": [plain, str(position.row_id)]}
    text = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: Sort, value_type: type) -> Position:
    """The position `cursor` stands for, if it was made for `sort`; `value_type` is the Python
    type of the sort field."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise PageProblem("cursor", "not a cursor this API made")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        made_for, (value, row_id) = payload["sort"], payload["after"]
        position = Position(_typed(value, value_type), uuid.UUID(row_id))
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error, UnicodeError):
        raise PageProblem("cursor", "not a cursor this API made") from None
    if made_for != str(sort):
        raise PageProblem(
            "cursor", f"the cursor was made for sort={made_for}, not sort={sort}; start over"
        )
    return position


def _typed(value: Any, value_type: type) -> Any:
    if not isinstance(value, str):
        raise TypeError(value)
    if value_type is datetime:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(value)
        return moment.astimezone(UTC)
    if value_type is uuid.UUID:
        return uuid.UUID(value)
    if value_type is str:
        if "\x00" in value:  # PostgreSQL text cannot hold it
            raise ValueError(value)
        return value
    raise TypeError(f"no cursor for a sort field of {value_type}")


def after(
    position: Position,
    sort: Sort,
    sort_column: ColumnElement[Any],
    id_column: ColumnElement[Any],
) -> ColumnElement[bool]:
    """Rows after `position` in `sort` order: a row-value comparison, which PostgreSQL
    answers from an index on (sort field, id)."""
    keys = tuple_(sort_column, id_column)
    last = tuple_(
        literal(position.value, sort_column.type), literal(position.row_id, id_column.type)
    )
    return keys < last if sort.descending else keys > last


def order(
    sort: Sort, sort_column: ColumnElement[Any], id_column: ColumnElement[Any]
) -> list[ColumnElement[Any]]:
    if sort.descending:
        return [sort_column.desc(), id_column.desc()]
    return [sort_column.asc(), id_column.asc()]
