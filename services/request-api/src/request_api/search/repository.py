"""Every query of finding things: one page of a tenant's requests or resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from request_api.models import ProvisioningRequest, Resource
from request_api.search import pages
from request_api.search.listing import Searchable

Row = TypeVar("Row", ProvisioningRequest, Resource)


async def find_page(
    session: AsyncSession,
    model: type[Row],
    searchable: Searchable,
    *,
    tenant: str,
    conditions: Sequence[ColumnElement[bool]],
    sort: pages.Sort,
    after: pages.Position | None,
    limit: int,
) -> list[Row]:
    """Up to `limit` + 1 rows of `tenant` in `sort` order after `after`: the one over the
    limit tells that another page follows."""
    sort_column, id_column = searchable.columns[sort.field], searchable.id_column
    statement = select(model).where(model.tenant == tenant, *conditions)
    if after is not None:
        statement = statement.where(pages.after(after, sort, sort_column, id_column))
    statement = statement.order_by(*pages.order(sort, sort_column, id_column)).limit(limit + 1)
    return list((await session.scalars(statement)).all())
