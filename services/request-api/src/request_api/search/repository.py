"""Every query of finding things: one page of a tenant's requests or resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import or_, select
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
    person: str | None = None,
) -> list[Row]:
    """Up to `limit` + 1 rows of `tenant` in `sort` order after `after`: the one over the
    limit tells that another page follows. With `person`, only the rows that name them (what
    they may read, for a caller who does not oversee the tenant)."""
    sort_column, id_column = searchable.columns[sort.field], searchable.id_column
    statement = select(model).where(model.tenant == tenant, *conditions)
    if person is not None:
        statement = statement.where(_naming(model, person))
    if after is not None:
        statement = statement.where(pages.after(after, sort, sort_column, id_column))
    statement = statement.order_by(*pages.order(sort, sort_column, id_column)).limit(limit + 1)
    return list((await session.scalars(statement)).all())


def _naming(model: type[Row], person: str) -> ColumnElement[bool]:
    """A request they asked for or that is for them; a resource they own or asked for."""
    if model is ProvisioningRequest:
        return or_(
            ProvisioningRequest.requester == person,
            ProvisioningRequest.parameters["assignee"].astext == person,
        )
    asked = select(ProvisioningRequest.id).where(ProvisioningRequest.requester == person)
    return or_(Resource.owner == person, Resource.request_id.in_(asked))
