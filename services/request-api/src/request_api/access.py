"""The people a request or a resource names, as the authorization table asks for them
(apikeys.authorization): the routes look an object up in the caller's tenant, then ask."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from apikeys.authorization import Action, Subject, may, require
from events.http import ProblemError
from request_api import repository
from request_api.approvals import repository as approval_stages
from request_api.approvals import workflow as approval_workflow
from request_api.models import ProvisioningRequest, Resource


def subject_of_request(request: ProvisioningRequest, *, approver: bool = False) -> Subject:
    assignee = request.parameters.get("assignee")
    return Subject(
        requester=request.requester,
        beneficiary=assignee if isinstance(assignee, str) else None,
        approver=approver,
    )


async def subject_of_resource(session: AsyncSession, resource: Resource) -> Subject:
    return Subject(
        requester=await repository.requester_of_resource(session, resource),
        owner=resource.owner,
    )


async def guarded_request(
    session: AsyncSession, request_id: uuid.UUID, caller: Caller, action: Action
) -> ProvisioningRequest:
    """The caller's tenant's request, if the caller may do `action` to it: 404 when the
    tenant has no such request, 403 when it is a colleague's they may not."""
    request = await repository.get_request(session, request_id, tenant=caller.tenant)
    if request is None:
        raise ProblemError(404, "Request not found")
    subject = subject_of_request(request)
    if not may(caller, action, subject):
        # An approver of its pending stage reads what they are asked to decide.
        stage = await approval_stages.pending_stage_of_request(
            session, request_id, tenant=caller.tenant
        )
        approver = stage is not None and approval_workflow.may_decide(stage, caller)
        require(caller, action, subject_of_request(request, approver=approver))
    return request


async def guarded_resource(
    session: AsyncSession, resource_id: uuid.UUID, caller: Caller, *actions: Action
) -> Resource:
    """The caller's tenant's resource, if the caller may do every one of `actions` to it:
    404 when the tenant has no such resource, 403 when it is a colleague's they may not."""
    resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
    if resource is None:
        raise ProblemError(404, "Resource not found")
    subject = await subject_of_resource(session, resource)
    for action in actions:
        require(caller, action, subject)
    return resource
