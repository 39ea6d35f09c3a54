"""Routes of /scim/v2 (RFC 7644): Users, Groups and the discovery endpoints. Writes need an
admin key of the tenant (an IdP integration key is one); reads an admin or auditor key."""

import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from scim2_models import (
    Context,
    Error,
    ForbiddenException,
    Group,
    NotFoundException,
    NotImplementedException,
    ResourceType,
    Schema,
)
from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from apikeys.authorization import Action, documented, may
from catalog import Catalog
from events import ServiceRuntime
from request_api.api_common import requester_of
from request_api.scim import (
    answers,
    discovery,
    groups,
    queries,
    reconcile,
    repository,
    resources,
    users,
)
from request_api.scim import openapi as docs
from request_api.scim.models import ScimGroup, ScimUser
from request_api.scim.onboarding import UserModel, load_onboarding
from request_api.scim.protocol import (
    ScimResponse,
    ScimRoute,
    error_response,
    json_body,
    require_match,
)
from request_api.scim.provisioning import Provisioning

PREFIX = "/scim/v2"
IfMatch = Annotated[str | None, Header()]
_NOT_GET = ["POST", "PUT", "PATCH", "DELETE"]
CREATED = docs.responses(201, docs.RESOURCE, etag=True)
ONE = docs.responses(200, docs.RESOURCE, etag=True)
LISTED = docs.responses(200, docs.LIST_RESPONSE)
GONE = docs.responses(204, None)
BODY = docs.request_body()


# Who may call each route that takes an id, in the OpenAPI document (the checks are `reader`
# and `writer` below).
READS = documented(Action.READ_DIRECTORY)
WRITES = documented(Action.MANAGE_DIRECTORY)


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    p = Provisioning(runtime, catalog, load_onboarding(catalog))
    provider = discovery.describe()
    runtime.add_periodic("scim-access", reconcile.INTERVAL_S, partial(reconcile.tick, p))
    router = APIRouter(
        prefix=PREFIX, route_class=ScimRoute, default_response_class=ScimResponse, tags=["scim"]
    )

    async def reader(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not may(caller, Action.READ_DIRECTORY):
            raise ForbiddenException(detail="reading SCIM resources needs an admin or auditor key")
        return caller

    async def writer(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not may(caller, Action.MANAGE_DIRECTORY):
            raise ForbiddenException(detail="SCIM writes need an admin key of the tenant")
        return caller

    Reader = Annotated[Caller, Depends(reader)]
    Writer = Annotated[Caller, Depends(writer)]

    # Discovery (RFC 7644 §4).

    @router.get("/ServiceProviderConfig", responses=docs.responses(200, docs.RESOURCE))
    async def service_provider_config(request: Request, caller: Reader) -> ScimResponse:
        config = discovery.service_provider_config(provider, _base(request))
        return ScimResponse(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))

    @router.get("/Schemas", responses=docs.responses(200, docs.LIST_RESPONSE))
    async def list_schemas(request: Request, caller: Reader) -> ScimResponse:
        return answers.listed(Schema, discovery.schemas(provider, _base(request)))

    @router.get(
        "/Schemas/{schema_id}", responses=docs.responses(200, docs.RESOURCE), openapi_extra=READS
    )
    async def get_schema(schema_id: str, request: Request, caller: Reader) -> ScimResponse:
        found = [s for s in discovery.schemas(provider, _base(request)) if s.id == schema_id]
        return answers.single(found, f"no schema {schema_id}")

    @router.get("/ResourceTypes", responses=docs.responses(200, docs.LIST_RESPONSE))
    async def list_resource_types(request: Request, caller: Reader) -> ScimResponse:
        return answers.listed(ResourceType, discovery.resource_types(provider, _base(request)))

    @router.get(
        "/ResourceTypes/{type_id}",
        responses=docs.responses(200, docs.RESOURCE),
        openapi_extra=READS,
    )
    async def get_resource_type(type_id: str, request: Request, caller: Reader) -> ScimResponse:
        found = [t for t in discovery.resource_types(provider, _base(request)) if t.id == type_id]
        return answers.single(found, f"no resource type {type_id}")

    for path in (
        "/ServiceProviderConfig",
        "/Schemas",
        "/Schemas/{schema_id}",
        "/ResourceTypes",
        "/ResourceTypes/{type_id}",
    ):
        router.add_api_route(path, _read_only, methods=_NOT_GET, include_in_schema=False)

    # Users.

    @router.post("/Users", status_code=201, responses=CREATED, openapi_extra=BODY)
    async def create_user(request: Request, caller: Writer) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await users.create(p, session, requester_of(caller), body)
            user = await _user(session, row, request)
        return answers.resource(user, row.version, request, Context.RESOURCE_CREATION_RESPONSE, 201)

    @router.get("/Users", responses=LISTED, openapi_extra=docs.LIST_PARAMETERS)
    async def list_users(request: Request, caller: Reader) -> ScimResponse:
        search = queries.search(request)
        condition = queries.condition(search, queries.USER_FILTERS)
        async with runtime.tenant_transaction(caller.tenant) as session:
            total, rows = await repository.page_of_users(
                session, tenant=caller.tenant, condition=condition, **queries.window(search)
            )
            memberships = await repository.groups_of_users(
                session, [row.id for row in rows], tenant=caller.tenant
            )
        found = [resources.user_resource(r, memberships[r.id], _base(request)) for r in rows]
        return answers.page(UserModel, found, total, search)

    @router.get("/Users/{user_id}", responses=ONE, openapi_extra=READS)
    async def get_user(user_id: str, request: Request, caller: Reader) -> ScimResponse:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _user_row(session, user_id, caller)
            user = await _user(session, row, request)
        return answers.resource(user, row.version, request, Context.RESOURCE_QUERY_RESPONSE)

    @router.put("/Users/{user_id}", responses=ONE, openapi_extra=BODY | WRITES)
    async def replace_user(
        user_id: str, request: Request, caller: Writer, if_match: IfMatch = None
    ) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _user_row(session, user_id, caller, if_match=if_match)
            await users.replace(p, session, requester_of(caller), row, body, _base(request))
            user = await _user(session, row, request)
        return answers.resource(user, row.version, request, Context.RESOURCE_REPLACEMENT_RESPONSE)

    @router.patch("/Users/{user_id}", responses=ONE, openapi_extra=BODY | WRITES)
    async def patch_user(
        user_id: str, request: Request, caller: Writer, if_match: IfMatch = None
    ) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _user_row(session, user_id, caller, if_match=if_match)
            await users.patch(p, session, requester_of(caller), row, body, _base(request))
            user = await _user(session, row, request)
        return answers.resource(user, row.version, request, Context.RESOURCE_PATCH_RESPONSE)

    @router.delete("/Users/{user_id}", status_code=204, responses=GONE, openapi_extra=WRITES)
    async def delete_user(user_id: str, caller: Writer, if_match: IfMatch = None) -> Response:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _user_row(session, user_id, caller, if_match=if_match)
            await users.delete(p, session, requester_of(caller), row)
        return Response(status_code=204)

    # Groups.

    @router.post("/Groups", status_code=201, responses=CREATED, openapi_extra=BODY)
    async def create_group(request: Request, caller: Writer) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await groups.create(p, session, requester_of(caller), body)
        group = resources.group_resource(row, _base(request))
        return answers.resource(
            group, row.version, request, Context.RESOURCE_CREATION_RESPONSE, 201
        )

    @router.get("/Groups", responses=LISTED, openapi_extra=docs.LIST_PARAMETERS)
    async def list_groups(request: Request, caller: Reader) -> ScimResponse:
        search = queries.search(request)
        condition = queries.condition(search, queries.GROUP_FILTERS)
        async with runtime.tenant_transaction(caller.tenant) as session:
            total, rows = await repository.page_of_groups(
                session, tenant=caller.tenant, condition=condition, **queries.window(search)
            )
        found = [resources.group_resource(row, _base(request)) for row in rows]
        return answers.page(Group, found, total, search)

    @router.get("/Groups/{group_id}", responses=ONE, openapi_extra=READS)
    async def get_group(group_id: str, request: Request, caller: Reader) -> ScimResponse:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _group_row(session, group_id, caller)
        group = resources.group_resource(row, _base(request))
        return answers.resource(group, row.version, request, Context.RESOURCE_QUERY_RESPONSE)

    @router.put("/Groups/{group_id}", responses=ONE, openapi_extra=BODY | WRITES)
    async def replace_group(
        group_id: str, request: Request, caller: Writer, if_match: IfMatch = None
    ) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _group_row(session, group_id, caller, if_match=if_match)
            await groups.replace(p, session, requester_of(caller), row, body, _base(request))
        group = resources.group_resource(row, _base(request))
        return answers.resource(group, row.version, request, Context.RESOURCE_REPLACEMENT_RESPONSE)

    @router.patch("/Groups/{group_id}", responses=ONE, openapi_extra=BODY | WRITES)
    async def patch_group(
        group_id: str, request: Request, caller: Writer, if_match: IfMatch = None
    ) -> ScimResponse:
        body = await json_body(request)
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _group_row(session, group_id, caller, if_match=if_match)
            await groups.patch(p, session, requester_of(caller), row, body, _base(request))
        group = resources.group_resource(row, _base(request))
        return answers.resource(group, row.version, request, Context.RESOURCE_PATCH_RESPONSE)

    @router.delete("/Groups/{group_id}", status_code=204, responses=GONE, openapi_extra=WRITES)
    async def delete_group(group_id: str, caller: Writer, if_match: IfMatch = None) -> Response:
        async with runtime.tenant_transaction(caller.tenant) as session:
            row = await _group_row(session, group_id, caller, if_match=if_match)
            await groups.delete(p, session, requester_of(caller), row)
        return Response(status_code=204)

    # RFC 7644 §3.4.3: a root-level search the service does not offer answers 501, which an
    # OpenAPI fuzzer would take for a failure: left out of the document.
    @router.post("/.search", status_code=501, include_in_schema=False)
    async def search_everything(caller: Reader) -> Response:
        raise NotImplementedException(detail="search several resource types at once")

    # Last: anything else under /scim/v2 is a SCIM 404.
    router.add_api_route(
        "/{unknown:path}",
        _not_found,
        methods=["GET", "HEAD", *_NOT_GET],
        include_in_schema=False,
    )
    return router


async def _read_only() -> Response:
    response = error_response(Error(status=405, detail="discovery endpoints are read-only"))
    response.headers["Allow"] = "GET"
    return response


async def _not_found() -> Response:
    raise NotFoundException(detail="no such SCIM endpoint")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


async def _user_row(
    session: AsyncSession, user_id: str, caller: Caller, *, if_match: str | None = None
) -> ScimUser:
    # Locked: a change checks If-Match and writes the version it read.
    row = await repository.get_user(session, _id(user_id), tenant=caller.tenant, lock=True)
    if row is None:
        raise NotFoundException(detail=f"no user {user_id}")
    require_match(if_match, row.version)
    return row


async def _group_row(
    session: AsyncSession, group_id: str, caller: Caller, *, if_match: str | None = None
) -> ScimGroup:
    row = await repository.get_group(session, _id(group_id), tenant=caller.tenant, lock=True)
    if row is None:
        raise NotFoundException(detail=f"no group {group_id}")
    require_match(if_match, row.version)
    return row


def _id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise NotFoundException(detail=f"no resource {text}") from error


async def _user(session: AsyncSession, row: ScimUser, request: Request) -> UserModel:
    memberships = await repository.groups_of_users(session, [row.id], tenant=row.tenant)
    return resources.user_resource(row, memberships[row.id], _base(request))
