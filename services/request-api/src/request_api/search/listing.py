"""Pure: what a caller may find requests and resources by, as query parameters, and the
conditions those parameters set. The tenant is never among them: the repository adds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.sql.elements import ColumnElement

from events.http import UtcMoment
from request_api.models import ProvisioningRequest, Resource
from request_api.search import filters, pages

DEFAULT_SORT = "-created_at"
# A value to compare a column with: PostgreSQL text cannot hold NUL.
Value = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]


class Listing(BaseModel):
    """Query parameters of every list."""

    model_config = ConfigDict(extra="forbid")

    created_after: UtcMoment | None = Field(
        None, description="Only those created at or after this moment (RFC 3339, with offset)."
    )
    created_before: UtcMoment | None = Field(
        None, description="Only those created before this moment (RFC 3339, with offset)."
    )
    filter: str | None = Field(
        None,
        max_length=filters.MAX_LENGTH,
        description='A SCIM filter (RFC 7644 §3.4.2.2), e.g. `status eq "completed" and '
        'catalog_item eq "postgres_schema"`.',
    )
    sort: str = Field(
        DEFAULT_SORT, max_length=100, description="A field to sort by; `-field` for descending."
    )
    limit: int = Field(50, ge=1, le=200, description="At most this many items per page.")
    cursor: str | None = Field(
        None,
        max_length=pages.MAX_CURSOR_LENGTH,
        description="`next_cursor` of the page before, with the same `sort`.",
    )

    def equalities(self) -> dict[str, Any]:
        """What the parameters that are named after a column want of it (a list: any of)."""
        own = set(type(self).model_fields) - set(Listing.model_fields)
        return {name: getattr(self, name) for name in sorted(own)}


class RequestListing(Listing):
    status: list[Value] = Field([], description="Only requests in one of these statuses.")
    catalog_item: Value | None = None
    requester: Value | None = None
    operation: Value | None = Field(None, description="`provision`, `modify` or `deprovision`.")


class ResourceListing(Listing):
    state: list[Value] = Field([], description="Only resources in one of these states.")
    catalog_item: Value | None = None
    owner: Value | None = None


@dataclass(frozen=True)
class Searchable:
    """One kind of row: its columns by the names callers use, and which of them sort.
    Sortable fields are never NULL, so a page always knows where it ended."""

    columns: Mapping[str, ColumnElement[Any]]
    sortable: frozenset[str]

    @property
    def id_column(self) -> ColumnElement[Any]:
        return self.columns["id"]


def requests() -> Searchable:
    r = ProvisioningRequest
    columns: dict[str, ColumnElement[Any]] = {
        "id": r.id.expression,
        "status": r.status.expression,
        "catalog_item": r.catalog_item.expression,
        "requester": r.requester.expression,
        "operation": r.operation.expression,
        "resource_id": r.resource_id.expression,
        "bundle_id": r.bundle_id.expression,
        "version": r.version.expression,
        "expires_at": r.expires_at.expression,
        "created_at": r.created_at.expression,
        "updated_at": r.updated_at.expression,
    }
    sortable = {"id", "status", "catalog_item", "requester", "operation"}
    return Searchable(columns, frozenset({*sortable, "created_at", "updated_at"}))


def resources() -> Searchable:
    r = Resource
    columns: dict[str, ColumnElement[Any]] = {
        "id": r.id.expression,
        "request_id": r.request_id.expression,
        "state": r.state.expression,
        "catalog_item": r.catalog_item.expression,
        "owner": r.owner.expression,
        "monthly_cost": r.monthly_cost.expression,
        "version": r.version.expression,
        "expires_at": r.expires_at.expression,
        "retired_at": r.retired_at.expression,
        "created_at": r.created_at.expression,
    }
    return Searchable(columns, frozenset({"id", "state", "catalog_item", "owner", "created_at"}))


def conditions(searchable: Searchable, listing: Listing) -> list[ColumnElement[bool]]:
    """Every condition the parameters set; a FilterProblem is the `filter` parameter's."""
    columns = searchable.columns
    found: list[ColumnElement[bool]] = []
    for name, wanted in listing.equalities().items():
        if isinstance(wanted, list):
            if wanted:
                found.append(columns[name].in_(wanted))
        elif wanted is not None:
            found.append(columns[name] == wanted)
    if listing.created_after is not None:
        found.append(columns["created_at"] >= listing.created_after)
    if listing.created_before is not None:
        found.append(columns["created_at"] < listing.created_before)
    if listing.filter is not None:
        found.append(filters.scim_filter_to_sql(listing.filter, columns))
    return found
