"""Pure: a SCIM filter expression (RFC 7644 §3.4.2.2) as a SQLAlchemy condition over a
whitelist of attributes. The scim2-filter-parser library parses; this module decides what each
comparison means for the type of the attribute's column."""

from __future__ import annotations

import json
import math
import operator
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from sqlalchemy import String, and_, cast, func, literal, or_, true, type_coerce
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

# Bounds that keep a filter cheap to plan and its translation's recursion shallow.
MAX_LENGTH = 4000
MAX_NESTING = 32
MAX_COMPARISONS = 64

Compare = Callable[[Any, Any], ColumnElement[bool]]


class FilterProblem(ValueError):
    """Why a filter cannot be used, in words for the caller."""


class CaseInsensitiveString(TypeDecorator[str]):
    impl = String
    cache_ok = True

    @property
    def python_type(self) -> type[str]:
        return str


def case_insensitive(column: ColumnElement[str]) -> ColumnElement[str]:
    """Marks a string attribute, in the attributes given to `scim_filter_to_sql`, as compared
    regardless of case (SCIM's `caseExact: false`, as for `userName`)."""
    return type_coerce(column, CaseInsensitiveString())


_WHOLE_WORD = r"(?![\w$-])"


class _Lexer(SCIMLexer):  # type: ignore[misc]  # the library has no type hints
    """The library's lexer with RFC 7159 values, which RFC 7644 builds `compValue` on: the
    library reads one-digit numbers only and no escapes in strings, and strips the quotes, so
    `"true"` and `true` looked alike. Here a value keeps its JSON text, for `json.loads`, and
    `true`, `false` and `null` are keywords only as whole words (not the start of `nullable`)."""

    tokens = SCIMLexer.tokens
    NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    FALSE = r"false" + _WHOLE_WORD
    TRUE = r"true" + _WHOLE_WORD
    NULL = r"null" + _WHOLE_WORD

    @_(r'"(?:[^"\\]|\\.)*"')  # type: ignore[name-defined, untyped-decorator]  # noqa: F821
    def COMP_VALUE(self, token: Any) -> Any:
        return token


class _Tokens:
    """The lexer's tokens, remembering how far the parser read: its errors say only that
    something was wrong."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.last: Any = None
        self.exhausted = False

    def __iter__(self) -> Iterator[Any]:
        for token in _Lexer().tokenize(self.expression):
            self.last = token
            yield token
        self.exhausted = True

    def problem(self) -> FilterProblem:
        if self.exhausted or self.last is None:
            return FilterProblem("the filter ends too early")
        return FilterProblem(
            f"unexpected {self.last.value!r} at character {self.last.index + 1} of the filter"
        )


def scim_filter_to_sql(
    expression: str, attributes: Mapping[str, ColumnElement[Any]]
) -> ColumnElement[bool]:
    """The condition `expression` sets on rows. `attributes` maps each attribute path a filter
    may name (`status`, `name.givenName`, `urn:...:User:userName`) to its column; names are
    compared regardless of case, as RFC 7644 wants. Raises FilterProblem for a syntax error,
    an unknown attribute, an operator the attribute's type has not, or a value of the wrong
    type."""
    if len(expression) > MAX_LENGTH:
        raise FilterProblem(f"the filter is longer than {MAX_LENGTH} characters")
    if not expression.strip():
        raise FilterProblem("the filter is empty")
    tokens = _Tokens(expression)
    try:
        tree = SCIMParser().parse(iter(tokens))
    except SCIMParserError:
        raise tokens.problem() from None
    except ValueError as error:  # the lexer's word for a character no token starts with
        raise FilterProblem(str(error)) from None
    return _Translation(attributes).condition(tree, nesting=0)


class _Translation:
    def __init__(self, attributes: Mapping[str, ColumnElement[Any]]) -> None:
        self.attributes = {name.lower(): column for name, column in attributes.items()}
        self.known = ", ".join(sorted(attributes))
        self.comparisons = 0

    def condition(self, node: Any, *, nesting: int) -> ColumnElement[bool]:
        if nesting > MAX_NESTING:
            raise FilterProblem(f"the filter nests deeper than {MAX_NESTING} levels")
        if node.namespace is not None:
            raise _complex_attribute()
        inner = node.expr
        condition: ColumnElement[bool]
        if isinstance(inner, ast.AttrExpr):
            condition = self.comparison(inner)
        elif isinstance(inner, ast.LogExpr):
            condition = self.chain(inner, nesting=nesting)
        else:
            condition = self.condition(inner, nesting=nesting + 1)
        # SCIM has two truth values: a comparison with an absent (NULL) attribute is false, so
        # its negation is true, where SQL's NOT of NULL would stay NULL.
        return condition.is_not(true()) if node.negated else condition

    def chain(self, expression: Any, *, nesting: int) -> ColumnElement[bool]:
        """A run of `and`/`or` written without parentheses. The library gives both the same
        precedence, so `a or b and c` comes back as `(a or b) and c`; RFC 7644 binds `and`
        tighter. The run is flattened in order, then regrouped: `or` of `and`s."""
        groups: list[list[ColumnElement[bool]]] = [[]]
        pending: list[Any] = [expression.expr2, expression.op, expression.expr1]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                if item.lower() == "or":
                    groups.append([])
            elif _unparenthesized(item):
                pending += [item.expr.expr2, item.expr.op, item.expr.expr1]
            else:
                groups[-1].append(self.condition(item, nesting=nesting + 1))
        return or_(*(and_(*group) for group in groups))

    def comparison(self, node: Any) -> ColumnElement[bool]:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterProblem(f"the filter makes more than {MAX_COMPARISONS} comparisons")
        name = _path_name(node.attr_path)
        column = self.attributes.get(name.lower())
        if column is None:
            raise FilterProblem(f"unknown attribute {name!r}; known: {self.known}")
        operation = node.value.lower()
        if operation == "pr":
            return _present(column)
        value = _decoded(node.comp_value.value)
        if value is None:
            return _compare_null(column, operation, name)
        return _comparer(column)(column, operation, value, name)


def _unparenthesized(node: Any) -> bool:
    return (
        isinstance(node, ast.Filter)
        and isinstance(node.expr, ast.LogExpr)
        and not node.negated
        and node.namespace is None
    )


def _complex_attribute() -> FilterProblem:
    return FilterProblem("filters on complex attributes (attribute[...]) are not supported")


def _path_name(path: Any) -> str:
    if not isinstance(path.attr_name, str):
        raise _complex_attribute()
    name: str = path.attr_name
    if path.sub_attr is not None:
        name = f"{name}.{path.sub_attr.value}"
    return f"{path.uri}:{name}" if path.uri else name


def _decoded(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise FilterProblem(f"{text} is not a valid JSON value") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterProblem(f"{text} is out of range")
    # PostgreSQL text holds neither NUL nor lone surrogates (both reachable with \u escapes).
    if isinstance(value, str) and ("\x00" in value or not _encodable(value)):
        raise FilterProblem(f"{text} holds characters a string cannot")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_ORDERINGS: dict[str, Compare] = {
    "eq": operator.eq,
    # An absent attribute is not equal to the value, so it matches (SQL's != would drop it).
    "ne": lambda column, value: column.is_distinct_from(value),
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_MATCHES: dict[str, Compare] = {
    "co": lambda column, text: column.contains(text, autoescape=True),
    "sw": lambda column, text: column.startswith(text, autoescape=True),
    "ew": lambda column, text: column.endswith(text, autoescape=True),
}
_MATCHES_ANY_CASE: dict[str, Compare] = {
    "co": lambda column, text: column.icontains(text, autoescape=True),
    "sw": lambda column, text: column.istartswith(text, autoescape=True),
    "ew": lambda column, text: column.iendswith(text, autoescape=True),
}


def _present(column: ColumnElement[Any]) -> ColumnElement[bool]:
    if _python_type(column) is str:
        return and_(column.is_not(None), column != "")
    return column.is_not(None)


def _compare_null(column: ColumnElement[Any], operation: str, name: str) -> ColumnElement[bool]:
    if operation == "eq":
        return column.is_(None)
    if operation == "ne":
        return column.is_not(None)
    raise FilterProblem(f"{name} {operation} null: only eq and ne compare with null")


def _compare_text(
    column: ColumnElement[Any], operation: str, value: Any, name: str
) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise _wrong_type(name, "a string", value)
    if isinstance(column.type, CaseInsensitiveString):
        if operation in _MATCHES_ANY_CASE:
            return _MATCHES_ANY_CASE[operation](column, value)
        return _ORDERINGS[operation](func.lower(column), func.lower(literal(value, String())))
    if operation in _MATCHES:
        return _MATCHES[operation](column, value)
    return _ORDERINGS[operation](column, value)


def _compare_uuid(
    column: ColumnElement[Any], operation: str, value: Any, name: str
) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise _wrong_type(name, "an id (a string)", value)
    if operation in _MATCHES_ANY_CASE:
        return _MATCHES_ANY_CASE[operation](cast(column, String()), value)
    try:
        identifier = uuid.UUID(value)
    except ValueError:
        raise _wrong_type(name, "an id (a UUID)", value) from None
    return _ORDERINGS[operation](column, identifier)


def _compare_moment(
    column: ColumnElement[Any], operation: str, value: Any, name: str
) -> ColumnElement[bool]:
    expected = 'a date-time with its offset (RFC 3339, e.g. "2026-01-31T09:00:00Z")'
    if not isinstance(value, str):
        raise _wrong_type(name, expected, value)
    if operation not in _ORDERINGS:
        raise _not_for(operation, name, "a date-time")
    try:
        moment = datetime.fromisoformat(value)
        # In UTC, as the database compares; a moment near year 1 or 9999 may not convert.
        in_utc = moment.astimezone(UTC) if moment.tzinfo else None
    except (ValueError, OverflowError):
        raise _wrong_type(name, expected, value) from None
    if in_utc is None:
        raise _wrong_type(name, expected, value)
    return _ORDERINGS[operation](column, in_utc)


def _compare_number(
    column: ColumnElement[Any], operation: str, value: Any, name: str
) -> ColumnElement[bool]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(name, "a number", value)
    if operation not in _ORDERINGS:
        raise _not_for(operation, name, "a number")
    return _ORDERINGS[operation](column, value)


def _compare_boolean(
    column: ColumnElement[Any], operation: str, value: Any, name: str
) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise _wrong_type(name, "true or false", value)
    if operation not in ("eq", "ne"):
        # RFC 7644: ordering and matching on a boolean is an invalid filter.
        raise _not_for(operation, name, "a boolean")
    return _ORDERINGS[operation](column, value)


_Comparer = Callable[[ColumnElement[Any], str, Any, str], ColumnElement[bool]]
_COMPARERS: dict[type, _Comparer] = {
    str: _compare_text,
    uuid.UUID: _compare_uuid,
    datetime: _compare_moment,
    int: _compare_number,
    float: _compare_number,
    Decimal: _compare_number,
    bool: _compare_boolean,
}


def _comparer(column: ColumnElement[Any]) -> _Comparer:
    python_type = _python_type(column)
    if python_type not in _COMPARERS:
        raise TypeError(f"no filter semantics for a column of {python_type}")
    return _COMPARERS[python_type]


def _python_type(column: ColumnElement[Any]) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:
        raise TypeError(f"the filter attribute {column} has no Python type") from None


def _wrong_type(name: str, expected: str, value: Any) -> FilterProblem:
    return FilterProblem(f"{name} compares with {expected}, not {json.dumps(value)}")


def _not_for(operation: str, name: str, kind: str) -> FilterProblem:
    return FilterProblem(f"{name} is {kind}: {operation} does not apply to it")
