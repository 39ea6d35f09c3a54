"""Routes for finding things: `GET /v1/requests` and `GET /v1/resources`, filtered, sorted and
paged by cursor."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.sql.elements import ColumnElement

from apikeys import Caller
from apikeys.authorization import Action, may
from events import ServiceRuntime
from events.http import PROBLEM_JSON, ProblemError
from request_api.models import ProvisioningRequest, Resource
from request_api.search import filters, listing, pages, repository


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'RFC 8288 `<...>; rel="next"` when another page follows.',
                "schema": {"type": "string"},
            }
        }
    },
    422: {
        "description": "A query parameter is invalid; `errors[].field` names it.",
        "content": {
            PROBLEM_JSON: {
                "example": {
                    "type": "urn:provisioning:problem:invalid-request",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "query.filter: unknown attribute 'colour'; known: ...",
                    "errors": [{"field": "query.filter", "message": "unknown attribute ..."}],
                }
            }
        },
    },
}


def create_router(
    runtime: ServiceRuntime, authenticate: Callable[[Request], Awaitable[Caller]]
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/requests", responses=RESPONSES)
    async def list_requests(
        query: Annotated[listing.RequestListing, Query()],
        caller: CallerDep,
        request: Request,
        response: Response,
    ) -> Page:
        """The caller's tenant's requests, newest first unless `sort` says otherwise: for an
        admin or an auditor, all of them; for anyone else, those they asked for or that are
        for them."""
        searchable = listing.requests()
        return await _page(ProvisioningRequest, searchable, query, caller, request, response)

    @router.get("/resources", responses=RESPONSES)
    async def list_resources(
        query: Annotated[listing.ResourceListing, Query()],
        caller: CallerDep,
        request: Request,
        response: Response,
    ) -> Page:
        """The caller's tenant's resources, newest first unless `sort` says otherwise: for an
        admin or an auditor, all of them; for anyone else, those they own or asked for."""
        return await _page(Resource, listing.resources(), query, caller, request, response)

    async def _page(
        model: type[repository.Row],
        searchable: listing.Searchable,
        query: listing.Listing,
        caller: Caller,
        request: Request,
        response: Response,
    ) -> Page:
        sort, position, conditions = _understood(searchable, query)
        async with runtime.tenant_transaction(caller.tenant) as session:
            rows = await repository.find_page(
                session,
                model,
                searchable,
                tenant=caller.tenant,
                conditions=conditions,
                sort=sort,
                after=position,
                limit=query.limit,
                # Reading every object of the tenant is an admin's or an auditor's; anyone
                # else lists those that name them (apikeys.authorization, `read`).
                person=None if may(caller, Action.READ) else caller.name,
            )
        items = rows[: query.limit]
        if len(rows) <= query.limit:
            return Page(items=[row.public() for row in items])
        last = items[-1]
        cursor = pages.encode_cursor(sort, pages.Position(getattr(last, sort.field), last.id))
        following = request.url.include_query_params(cursor=cursor)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        return Page(items=[row.public() for row in items], next_cursor=cursor)

    return router


def _understood(
    searchable: listing.Searchable, query: listing.Listing
) -> tuple[pages.Sort, pages.Position | None, list[ColumnElement[bool]]]:
    """The sort, where to start and the conditions the query asks for, or a 422 naming the
    parameter that cannot be understood."""
    try:
        sort = pages.parse_sort(query.sort, searchable.sortable)
        position = None
        if query.cursor is not None:
            value_type = searchable.columns[sort.field].type.python_type
            position = pages.decode_cursor(query.cursor, sort, value_type)
    except pages.PageProblem as problem:
        raise _invalid(problem.parameter, str(problem)) from None
    try:
        conditions = listing.conditions(searchable, query)
    except filters.FilterProblem as problem:
        raise _invalid("filter", str(problem)) from None
    return sort, position, conditions


def _invalid(parameter: str, message: str) -> ProblemError:
    field = f"query.{parameter}"
    return ProblemError(
        422,
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )
