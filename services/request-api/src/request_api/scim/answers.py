"""SCIM answers: a resource (with its ETag, and its Location when created), a page of
resources as a ListResponse, discovery documents; all application/scim+json."""

from typing import Any

from fastapi import Request
from scim2_models import (
    Context,
    ListResponse,
    NotFoundException,
    Resource,
    ResponseParameters,
    SearchRequest,
)

from request_api.scim import queries
from request_api.scim.protocol import ScimResponse, etag


def resource(
    answered: Resource[Any],
    version: int,
    request: Request,
    context: Context,
    status: int = 200,
) -> ScimResponse:
    body = answered.model_dump(
        scim_ctx=context, response_parameters=queries.response_parameters(request)
    )
    headers = {"ETag": etag(version)}
    if status == 201 and answered.meta and answered.meta.location:
        headers["Location"] = str(answered.meta.location)
    return ScimResponse(body, status_code=status, headers=headers)


def page(
    model: type[Resource[Any]], found: list[Any], total: int, search: SearchRequest[Any]
) -> ScimResponse:
    listing = ListResponse[model](  # type: ignore[valid-type]
        total_results=total,
        start_index=search.start_index or 1,
        items_per_page=len(found),
        resources=found,
    )
    parameters: ResponseParameters[Any] = ResponseParameters(
        attributes=search.attributes, excluded_attributes=search.excluded_attributes
    )
    return ScimResponse(
        listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters)
    )


def listed(model: type[Resource[Any]], found: list[Any]) -> ScimResponse:
    listing = ListResponse[model](  # type: ignore[valid-type]
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return ScimResponse(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


def single(found: list[Any], missing: str) -> ScimResponse:
    if not found:
        raise NotFoundException(detail=missing)
    return ScimResponse(found[0].model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
