import inspect
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.facts import REASON_MAX_CHARS, REDACTED, Facts, facts_of, redacted
from events.contracts import (
    allocation,
    configuration,
    deployment,
    processing,
    requests,
    validation,
)
from events.contracts.common import Problem
from events.envelope import Event

CONTRACT_MODULES = (requests, validation, allocation, configuration, deployment, processing)
# The request statuses of the request-api's lifecycle, as its contract names them.
STATUSES = set(requests.RequestStatus)
REQUEST_ID = uuid.uuid4()
RESOURCE_ID = uuid.uuid4()
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def contract_types() -> list[str]:
    return [
        cls.type
        for module in CONTRACT_MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Event) and cls is not Event and cls.__module__ == module.__name__
    ]


def facts_from(event: Event, source: str) -> Facts:
    return facts_of(event.type, source, str(event.request_id), event.model_dump(mode="json"))


def test_the_contracts_are_found() -> None:
    assert {"request.submitted", "approval.escalated", "resource.purged"} <= set(contract_types())


def test_every_contract_event_type_has_a_step() -> None:
    unmapped = [t for t in contract_types() if facts_of(t, "svc", "subject", {}).step == "other"]
    assert unmapped == []


def test_every_status_named_is_a_lifecycle_status() -> None:
    for event_type in contract_types():
        facts = facts_of(event_type, "svc", "subject", {})
        assert {facts.before, facts.after} - {None} <= STATUSES, event_type


def test_an_unknown_event_type_is_recorded_as_other() -> None:
    facts = facts_of("something.new", "newcomer", "subject-1", {"weird": [1, 2]})
    assert (facts.step, facts.outcome, facts.service) == ("other", "recorded", "newcomer")
    assert facts.request_id == "subject-1" and facts.actor == "newcomer"


def test_a_submission_is_the_requesters_own() -> None:
    event = requests.RequestSubmitted(
        request_id=REQUEST_ID, catalog_item="postgres_database", requester="alice", tenant="acme"
    )
    facts = facts_from(event, "request-api")
    assert facts == Facts(
        tenant="acme",
        actor="alice",
        on_behalf_of=None,
        request_id=str(REQUEST_ID),
        resource_id=None,
        step="submission",
        outcome="requested",
        reason=None,
        before=None,
        after="submitted",
        service="request-api",
    )


def test_an_approval_is_the_approvers_on_the_requesters_behalf() -> None:
    event = requests.RequestApproved(
        request_id=REQUEST_ID,
        catalog_item="cloud_vm",
        requester="alice",
        approver="bob",
        justification="needed for the launch",
    )
    facts = facts_from(event, "request-api")
    assert (facts.actor, facts.on_behalf_of) == ("bob", "alice")
    assert (facts.step, facts.outcome, facts.reason) == (
        "approval",
        "approved",
        "needed for the launch",
    )
    assert facts.before == "awaiting_approval"


def test_a_recorded_vote_says_which_way_it_went() -> None:
    event = requests.ApprovalDecisionRecorded(
        request_id=REQUEST_ID,
        approval_id=uuid.uuid4(),
        stage="finance",
        approver="carol",
        decision="deny",
        justification="over budget",
        stage_status="pending",
        at=NOW,
    )
    facts = facts_from(event, "request-api")
    assert (facts.step, facts.outcome, facts.actor, facts.reason) == (
        "approval",
        "denied",
        "carol",
        "over budget",
    )


def test_a_system_step_is_the_services_on_the_requesters_behalf() -> None:
    event = validation.RequestValidated(
        request_id=REQUEST_ID, catalog_item="postgres_schema", requester="alice"
    )
    facts = facts_from(event, "validator")
    assert (facts.actor, facts.on_behalf_of) == ("validator", "alice")
    assert (facts.step, facts.outcome, facts.before, facts.after) == (
        "validation",
        "succeeded",
        "submitted",
        "validated",
    )


def test_a_rejection_gives_every_reason() -> None:
    event = validation.RequestRejected(
        request_id=REQUEST_ID,
        reasons=[
            Problem(field="size", message="too large", code="too_large"),
            Problem(message="not allowed here", code="policy"),
        ],
    )
    facts = facts_from(event, "validator")
    assert (facts.outcome, facts.after) == ("rejected", "rejected")
    assert facts.reason == "too large; not allowed here"


def test_a_denial_rejects_a_request_that_awaited_approval() -> None:
    event = validation.RequestRejected(
        request_id=REQUEST_ID, reasons=[Problem(message="denied by bob: no", code="denied")]
    )
    assert facts_from(event, "validator").before == "awaiting_approval"


def test_a_clean_refusal_fails_and_an_error_rolls_back() -> None:
    quota = allocation.AllocationFailed(
        request_id=REQUEST_ID, reason="quota exceeded", code="quota_exceeded"
    )
    crash = allocation.AllocationFailed(request_id=REQUEST_ID, reason="boom", code="internal")
    assert facts_from(quota, "allocator").after == "failed"
    assert facts_from(crash, "allocator").after == "rolled_back"
    assert facts_from(quota, "allocator").reason == "quota exceeded"


def test_a_failed_deployment_is_undone_and_names_its_resource() -> None:
    leftover = deployment.Leftover(
        driver="postgres",
        server_id="pg-1",
        configuration={},
        resource_id=RESOURCE_ID,
        tenant="acme",
        owner="alice",
    )
    event = deployment.ProvisioningFailed(
        request_id=REQUEST_ID,
        catalog_item="postgres_database",
        server_id="pg-1",
        reason="target down",
        leftover=leftover,
    )
    facts = facts_from(event, "deployer")
    assert (facts.step, facts.outcome, facts.after) == ("deployment", "failed", "compensating")
    assert facts.resource_id == str(RESOURCE_ID) and facts.actor == "deployer"


def test_a_completed_modify_is_a_modify() -> None:
    event = deployment.ProvisioningCompleted(
        request_id=REQUEST_ID,
        catalog_item="postgres_database",
        requester="alice",
        operation="modify",
        resource_id=RESOURCE_ID,
        server_id="pg-1",
        credentials_ref="cred-123",
    )
    facts = facts_from(event, "deployer")
    assert (facts.step, facts.outcome, facts.after) == ("modify", "succeeded", "completed")
    assert facts.resource_id == str(RESOURCE_ID)


def test_capacity_given_back_is_an_undo_only_for_a_provision() -> None:
    rollback = allocation.AllocationReleased(request_id=REQUEST_ID, reason="rolled back")
    retire = allocation.AllocationReleased(
        request_id=REQUEST_ID, reason="retired", operation="deprovision"
    )
    assert facts_from(rollback, "allocator").step == "compensation"
    assert facts_from(rollback, "allocator").after == "rolled_back"
    assert (facts_from(retire, "allocator").step, facts_from(retire, "allocator").after) == (
        "deprovision",
        None,
    )


def test_lease_and_drift() -> None:
    extended = requests.LeaseExtended(
        request_id=REQUEST_ID, resource_id=RESOURCE_ID, expires_at=NOW, extended_by="dave"
    )
    drift = deployment.DriftDetected(
        request_id=REQUEST_ID, resource_id=RESOURCE_ID, differences=["owner changed", "gone"]
    )
    assert (facts_from(extended, "request-api").step, facts_from(extended, "x").actor) == (
        "lease",
        "dave",
    )
    assert facts_from(drift, "deployer").reason == "owner changed; gone"


def test_a_retry_is_the_retrying_services_with_its_last_error() -> None:
    retried = processing.ProcessingRetried(
        request_id=REQUEST_ID,
        service="deployer",
        handled_type="resource.configured",
        handled_event_id=uuid.uuid4(),
        attempts=3,
        outcome="succeeded",
        first_failed_at=NOW,
        last_error="ConnectionRefusedError: target down",
    )
    said = facts_from(retried, "deployer")
    assert (said.step, said.outcome, said.actor) == ("retry", "retried", "deployer")
    assert said.reason == "ConnectionRefusedError: target down"


def test_the_subject_stands_in_for_a_missing_request_id() -> None:
    assert facts_of("resource.verified", "deployer", "req-9", {}).request_id == "req-9"


def test_a_huge_reason_is_capped() -> None:
    facts = facts_of("allocation.failed", "allocator", "s", {"reason": "x" * 1_000_000})
    assert facts.reason is not None and len(facts.reason) == REASON_MAX_CHARS
    many = facts_of("request.rejected", "validator", "s", {"reasons": [{"message": "y"}] * 10**5})
    assert many.reason is not None and len(many.reason) <= REASON_MAX_CHARS


def test_wrong_types_are_not_known() -> None:
    facts = facts_of(
        "request.approved",
        "request-api",
        "s",
        {"approver": ["bob"], "requester": 7, "tenant": {}, "request_id": None, "reason": 1.5},
    )
    assert (facts.actor, facts.on_behalf_of, facts.tenant, facts.reason) == (None, None, None, None)
    assert facts.request_id == "s"


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(
    [
        "request_id",
        "resource_id",
        "tenant",
        "requester",
        "approver",
        "requested_by",
        "extended_by",
        "reason",
        "reasons",
        "justification",
        "differences",
        "decision",
        "operation",
        "step",
        "code",
        "leftover",
        "dimension",
        "in_use",
        "limit",
        "password",
    ]
) | st.text(max_size=10)
hostile_data = st.dictionaries(field_names, json_like, max_size=12)
event_types = st.sampled_from(contract_types()) | st.text(max_size=30)


@settings(deadline=None)
@given(event_type=event_types, source=st.text(), subject=st.text(), data=hostile_data)
def test_hostile_data_never_raises(
    event_type: str, source: str, subject: str, data: dict[str, Any]
) -> None:
    facts = facts_of(event_type, source, subject, data)
    assert facts.step and facts.outcome and facts.service
    for text in (facts.actor, facts.on_behalf_of, facts.tenant, facts.request_id, facts.reason):
        assert text is None or isinstance(text, str)
    assert facts.reason is None or len(facts.reason) <= REASON_MAX_CHARS


def test_secrets_are_masked_at_any_depth_but_references_kept() -> None:
    data = {
        "password": "hunter2",
        "credentials_ref": "cred-123",
        "outputs": {"username": "orders_owner", "DB-Password": "s3cret"},
        "targets": [{"api_token": "t0k", "host": "h"}, {"privateKey": "---"}],
        "client_secret": {"nested": "anything"},
        "tenant": "acme",
    }
    assert redacted(data) == {
        "password": REDACTED,
        "credentials_ref": "cred-123",
        "outputs": {"username": "orders_owner", "DB-Password": REDACTED},
        "targets": [{"api_token": REDACTED, "host": "h"}, {"privateKey": REDACTED}],
        "client_secret": REDACTED,
        "tenant": "acme",
    }
    assert data["password"] == "hunter2"


def test_what_is_too_deep_to_inspect_is_masked() -> None:
    data: dict[str, Any] = {"leaf": "x"}
    for _ in range(100):
        data = {"inner": data}
    assert "x" not in repr(redacted(data))


def _secret_values(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            ("password" in str(k).lower() and v != REDACTED) or _secret_values(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_secret_values(item) for item in value)
    return False


@settings(deadline=None)
@given(data=hostile_data)
def test_redaction_never_raises_and_leaves_no_password(data: dict[str, Any]) -> None:
    assert not _secret_values(redacted(data))


def test_an_event_that_does_not_state_its_tenant_takes_the_envelopes() -> None:
    data = {"request_id": str(REQUEST_ID), "resource_id": str(uuid.uuid4())}
    facts = facts_of("resource.verified", "deployer", str(REQUEST_ID), data, tenant="acme")
    assert facts.tenant == "acme"
    stated = facts_of(
        "resource.verified", "deployer", "x", {**data, "tenant": "globex"}, tenant="acme"
    )
    assert stated.tenant == "globex"
