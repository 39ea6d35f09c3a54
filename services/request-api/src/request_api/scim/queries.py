"""What a SCIM query asks: the filter (over the columns each attribute is kept in), the
page, and which attributes to answer with."""

from typing import Any

from fastapi import Request
from scim2_models import Group, InvalidFilterException, ResponseParameters, SearchRequest, User
from sqlalchemy.sql.elements import ColumnElement

from request_api.scim import discovery
from request_api.scim.models import ScimGroup, ScimUser
from request_api.search.filters import FilterProblem, case_insensitive, scim_filter_to_sql

DEFAULT_COUNT = 100
SEARCH_PARAMETERS = ("filter", "startIndex", "count", "attributes", "excludedAttributes")


def _any_case(column: Any) -> ColumnElement[str]:
    """A string attribute compared regardless of case (SCIM's `caseExact: false`)."""
    return case_insensitive(column)


USER_FILTERS = {
    "id": ScimUser.id,
    "userName": _any_case(ScimUser.user_name),
    "displayName": _any_case(ScimUser.display_name),
    "externalId": ScimUser.external_id,
    "active": ScimUser.active,
    # The primary e-mail (else the first) stands for the multi-valued attribute.
    "emails.value": _any_case(ScimUser.email),
    "emails": _any_case(ScimUser.email),
    "name.familyName": _any_case(ScimUser.family_name),
    "meta.created": ScimUser.created_at,
    "meta.lastModified": ScimUser.last_modified,
}
USER_FILTERS |= {f"{User.__schema__}:{name}": column for name, column in USER_FILTERS.items()}
GROUP_FILTERS = {
    "id": ScimGroup.id,
    "displayName": _any_case(ScimGroup.display_name),
    "externalId": ScimGroup.external_id,
    "meta.created": ScimGroup.created_at,
    "meta.lastModified": ScimGroup.last_modified,
}
GROUP_FILTERS |= {f"{Group.__schema__}:{name}": column for name, column in GROUP_FILTERS.items()}


def response_parameters(request: Request) -> ResponseParameters[Any]:
    wanted = {k: v for k, v in request.query_params.items() if k in SEARCH_PARAMETERS[3:]}
    return ResponseParameters.model_validate(wanted)


def search(request: Request) -> SearchRequest[Any]:
    wanted = {k: v for k, v in request.query_params.items() if k in SEARCH_PARAMETERS}
    return SearchRequest.model_validate(wanted)


def window(search: SearchRequest[Any]) -> dict[str, int]:
    count = DEFAULT_COUNT if search.count is None else search.count
    return {
        "offset": max((search.start_index or 1) - 1, 0),
        "limit": max(min(count, discovery.MAX_RESULTS), 0),
    }


def condition(search: SearchRequest[Any], attributes: dict[str, Any]) -> Any:
    if not search.filter:
        return None
    try:
        return scim_filter_to_sql(str(search.filter), attributes)
    except FilterProblem as problem:
        raise InvalidFilterException(detail=str(problem)) from problem
