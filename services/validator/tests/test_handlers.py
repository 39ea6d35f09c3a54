"""The validator's handlers, fast: each is a function of (event, context) whose answer is
what it emits. The validator keeps nothing of its own to decide, so no database is needed."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import load_catalog
from events import Event, HandlerContext
from events.contracts.requests import RequestApproved, RequestDenied, RequestSubmitted
from events.contracts.validation import (
    ApprovalRequired,
    RequestRejected,
    RequestValidated,
    ValidationFailed,
)
from events.envelope import Envelope
from validator import handlers

CATALOG = load_catalog()


def context_for(event: Event) -> HandlerContext[handlers.Deps]:
    # The handlers never touch the session: a placeholder, not a mock, so a use fails loudly.
    return HandlerContext(
        session=cast(AsyncSession, None),
        envelope=Envelope.wrap(event, source="request-api"),
        deps=handlers.Deps(catalog=CATALOG),
    )


def submitted(**changes: Any) -> RequestSubmitted:
    facts: dict[str, Any] = {
        "request_id": uuid.uuid4(),
        "catalog_item": "postgres_database",
        "parameters": {"name": "orders"},
        "requester": "alice",
        "tenant": "default",
        "requester_roles": ["requester"],
    }
    return RequestSubmitted(**{**facts, **changes})


async def emitted_by(event: Event) -> list[Event]:
    ctx = context_for(event)
    await handlers.router.registrations[event.type].handler(event, ctx)
    return ctx.emitted


async def test_a_request_within_policy_is_validated_with_its_facts() -> None:
    event = submitted()
    [answer] = await emitted_by(event)
    assert isinstance(answer, RequestValidated)
    assert answer.request_id == event.request_id
    assert (answer.catalog_item, answer.parameters, answer.requester, answer.tenant) == (
        "postgres_database",
        {"name": "orders"},
        "alice",
        "default",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parameters": {"name": "Orders!"}}, "parameters.name"),
        ({"parameters": {"name": "orders", "shards": 3}}, None),
        ({"requester_roles": ["auditor"]}, None),
        ({"catalog_item": "no_such_item"}, None),
    ],
)
async def test_a_request_outside_policy_is_rejected_with_reasons_and_the_policy_version(
    changes: dict[str, Any], field: str | None
) -> None:
    [answer] = await emitted_by(submitted(**changes))
    assert isinstance(answer, RequestRejected)
    assert answer.reasons and answer.policy_version == CATALOG.version
    if field is not None:
        assert any(reason.field == field for reason in answer.reasons), answer.reasons


async def test_above_a_threshold_the_request_awaits_approval_and_says_why() -> None:
    event = submitted(parameters={"name": "orders", "connection_limit": 50})
    [answer] = await emitted_by(event)
    assert isinstance(answer, ApprovalRequired)
    assert answer.request_id == event.request_id
    assert [reason.message for reason in answer.reasons] == [
        "more than 25 connections needs an approver"
    ]


async def test_a_modify_needs_approval_only_for_what_it_raises() -> None:
    unchanged = submitted(
        operation="modify",
        resource_id=uuid.uuid4(),
        parameters={"name": "orders", "connection_limit": 50},
        previous_parameters={"name": "orders", "connection_limit": 50},
    )
    [answer] = await emitted_by(unchanged)
    assert isinstance(answer, RequestValidated)
    raised = unchanged.model_copy(update={"previous_parameters": {"name": "orders"}})
    [answer] = await emitted_by(raised)
    assert isinstance(answer, ApprovalRequired)


async def test_a_deprovision_never_waits_for_approval() -> None:
    event = submitted(
        operation="deprovision",
        resource_id=uuid.uuid4(),
        parameters={"name": "orders", "connection_limit": 50},
    )
    [answer] = await emitted_by(event)
    assert isinstance(answer, RequestValidated)


async def test_an_approved_request_is_validated_and_a_denied_one_rejected_as_denied() -> None:
    request_id = uuid.uuid4()
    approved = RequestApproved(
        request_id=request_id,
        catalog_item="postgres_database",
        parameters={"name": "orders", "connection_limit": 50},
        requester="alice",
        approver="bob",
        justification="fine",
    )
    [answer] = await emitted_by(approved)
    assert isinstance(answer, RequestValidated) and answer.parameters == approved.parameters

    denied = RequestDenied(request_id=request_id, approver="bob", justification="too big")
    [answer] = await emitted_by(denied)
    assert isinstance(answer, RequestRejected)
    [reason] = answer.reasons
    assert reason.code == "denied" and "bob" in reason.message and "too big" in reason.message


def test_a_handler_that_gives_up_fails_the_validation_as_internal() -> None:
    event = submitted()
    failure = handlers.validation_failed(event, "boom")
    assert isinstance(failure, ValidationFailed)
    assert (failure.request_id, failure.reason, failure.code) == (
        event.request_id,
        "boom",
        "internal",
    )
