import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.entries import Entry, entry_of
from auditor.facts import REDACTED, facts_of
from auditor.models import AuditRecord
from auditor.resource_state import people_of, state_at

RESOURCE = str(uuid.uuid4())
PROVISION, MODIFY, DEPROVISION = (str(uuid.uuid4()) for _ in range(3))
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=1)


def facts(operation: str = "provision", **parameters: Any) -> dict[str, Any]:
    return {
        "catalog_item": "postgres_database",
        "parameters": {"name": "orders", "connection_limit": 10, **parameters},
        "requester": "rita",
        "tenant": "acme",
        "operation": operation,
        "resource_id": RESOURCE,
    }


class History:
    """Audit records about one resource, each `after` seconds from T0."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, request_id: str, event_type: str, source: str, after: float, **data: Any) -> None:
        data = {"request_id": request_id, **data}
        said = facts_of(event_type, source, request_id, data)
        self.entries.append(
            Entry(
                seq=len(self.entries) + 1,
                event_type=event_type,
                occurred_at=T0 + timedelta(seconds=after),
                service=said.service,
                step=said.step,
                outcome=said.outcome,
                tenant="acme",
                request_id=request_id,
                resource_id=said.resource_id,
                actor=said.actor,
                on_behalf_of=said.on_behalf_of,
                before=said.before,
                after=said.after,
                data=data,
            )
        )

    def at(self, seconds: float) -> Any:
        return state_at(RESOURCE, T0 + timedelta(seconds=seconds), self.entries)


def provisioned(history: History) -> None:
    history.add(PROVISION, "request.submitted", "request-api", 0, **facts())
    history.add(PROVISION, "request.validated", "validator", 1, **facts())
    history.add(PROVISION, "resource.allocated", "allocator", 2, **facts(), server_id="pg-1")
    configuration = {"database": "orders", "connection_limit": 10}
    history.add(
        PROVISION,
        "resource.configured",
        "configurator",
        3,
        **facts(),
        server_id="pg-1",
        configuration=configuration,
    )
    history.add(PROVISION, "resource.deployed", "deployer", 4, resource_id=RESOURCE, server_id="x")
    history.add(PROVISION, "resource.verified", "deployer", 5, resource_id=RESOURCE)
    history.add(
        PROVISION,
        "provisioning.completed",
        "deployer",
        6,
        **facts(),
        server_id="pg-1",
        outputs={"host": "127.0.0.1", "database": "orders"},
    )


def test_nothing_is_known_before_the_first_record() -> None:
    history = History()
    provisioned(history)
    assert history.at(-1) is None
    assert state_at(RESOURCE, LATER, []) is None


def test_the_resource_moves_with_its_provision_request() -> None:
    history = History()
    provisioned(history)

    assert history.at(0).state == "requested"
    allocated = history.at(2.5)
    assert (allocated.state, allocated.server_id, allocated.configuration) == (
        "allocated",
        "pg-1",
        None,
    )
    active = history.at(6)
    assert (active.state, active.catalog_item, active.tenant, active.owner) == (
        "active",
        "postgres_database",
        "acme",
        "rita",
    )
    assert active.parameters == {"name": "orders", "connection_limit": 10}
    assert active.configuration == {"database": "orders", "connection_limit": 10}
    assert active.outputs == {"host": "127.0.0.1", "database": "orders"}
    assert (active.last_seq, active.last_event_type) == (7, "provisioning.completed")
    assert [(r.request_id, r.operation, r.requester, r.status) for r in active.requests] == [
        (PROVISION, "provision", "rita", "completed")
    ]


def test_a_modify_counts_once_it_completed() -> None:
    history = History()
    provisioned(history)
    changed = facts("modify", connection_limit=20)
    history.add(MODIFY, "request.submitted", "request-api", 10, **{**changed, "requester": "bob"})
    history.add(
        MODIFY,
        "resource.configured",
        "configurator",
        11,
        **changed,
        server_id="pg-1",
        configuration={"database": "orders", "connection_limit": 20},
    )
    history.add(
        MODIFY,
        "provisioning.completed",
        "deployer",
        12,
        **changed,
        server_id="pg-1",
        outputs={"host": "127.0.0.1", "database": "orders"},
    )

    during = history.at(11)
    assert (during.state, during.parameters["connection_limit"]) == ("active", 10)
    after = history.at(12)
    assert after.parameters["connection_limit"] == 20
    assert after.configuration["connection_limit"] == 20
    assert after.owner == "rita"  # a modify by someone else does not change whose it is
    assert [(r.operation, r.requester, r.status) for r in after.requests] == [
        ("provision", "rita", "completed"),
        ("modify", "bob", "completed"),
    ]


def test_a_failed_modify_leaves_the_resource_as_it_was() -> None:
    history = History()
    provisioned(history)
    history.add(MODIFY, "request.submitted", "request-api", 10, **facts("modify", name="other"))
    history.add(
        MODIFY,
        "provisioning.failed",
        "deployer",
        11,
        catalog_item="postgres_database",
        server_id="pg-1",
        reason="target down",
        operation="modify",
        code="target_failed",
    )
    state = history.at(20)
    assert (state.state, state.parameters["name"]) == ("active", "orders")
    assert state.requests[-1].status == "failed"


def test_deprovisioned_then_purged() -> None:
    history = History()
    provisioned(history)
    gone = facts("deprovision")
    history.add(DEPROVISION, "request.submitted", "request-api", 20, **gone)
    history.add(DEPROVISION, "provisioning.completed", "deployer", 21, **gone, server_id="pg-1")
    history.add(
        DEPROVISION, "allocation.released", "allocator", 22, operation="deprovision", reason="ok"
    )
    history.add(DEPROVISION, "resource.purged", "deployer", 90, resource_id=RESOURCE, server_id="x")

    assert history.at(20).state == "deprovisioning"
    assert history.at(22).state == "deprovisioned"
    assert history.at(90).state == "purged"
    assert history.at(19).state == "active"  # the past does not change


def test_a_deprovision_that_fails_leaves_it_active() -> None:
    history = History()
    provisioned(history)
    history.add(DEPROVISION, "request.submitted", "request-api", 20, **facts("deprovision"))
    history.add(
        DEPROVISION,
        "provisioning.failed",
        "deployer",
        21,
        catalog_item="postgres_database",
        server_id="pg-1",
        reason="target down",
        operation="deprovision",
        code="target_failed",
    )
    assert history.at(21).state == "active"


def test_an_undone_provision_is_rolled_back_though_the_undo_does_not_name_it() -> None:
    history = History()
    history.add(PROVISION, "request.submitted", "request-api", 0, **facts())
    history.add(PROVISION, "resource.allocated", "allocator", 2, **facts(), server_id="pg-1")
    history.add(PROVISION, "configuration.failed", "configurator", 3, server_id="pg-1", reason="x")
    history.add(PROVISION, "allocation.released", "allocator", 4, reason="rolled back")

    assert history.at(3).state == "compensating"
    assert history.at(4).state == "rolled_back"


def test_drift_lease_and_a_later_recheck() -> None:
    history = History()
    provisioned(history)
    history.add(
        PROVISION,
        "drift.detected",
        "deployer",
        30,
        resource_id=RESOURCE,
        differences=["connection_limit is 99", 7],
    )
    history.add(PROVISION, "resource.verified", "deployer", 31, resource_id=RESOURCE)
    history.add(
        PROVISION,
        "lease.extended",
        "request-api",
        32,
        resource_id=RESOURCE,
        expires_at="2027-01-01T00:00:00+00:00",
        extended_by="rita",
    )
    history.add(PROVISION, "drift.resolved", "deployer", 40, resource_id=RESOURCE)

    drifted = history.at(32)
    assert drifted.state == "active"  # a re-check does not reopen the provision
    assert drifted.drift is not None
    assert drifted.drift.differences == ["connection_limit is 99"]
    assert drifted.drift.detected_at == T0 + timedelta(seconds=30)
    assert drifted.lease_expires_at == "2027-01-01T00:00:00+00:00"
    assert history.at(40).drift is None


def test_the_owner_is_the_assignee_when_there_is_one() -> None:
    history = History()
    history.add(PROVISION, "request.submitted", "request-api", 0, **facts(assignee="lee"))
    state = history.at(1)
    assert state.owner == "lee"
    assert people_of(state, history.entries) == {"lee", "rita"}


def test_unknown_and_malformed_records_change_nothing() -> None:
    history = History()
    provisioned(history)
    history.add(
        PROVISION,
        "something.new",
        "newcomer",
        50,
        resource_id=RESOURCE,
        parameters="not a mapping",
        operation=["odd"],
    )
    history.add(PROVISION, "drift.detected", "deployer", 51, resource_id=RESOURCE, differences=3)
    state = history.at(51)
    assert (state.state, state.parameters["name"]) == ("active", "orders")
    assert state.drift is not None and state.drift.differences == []


def test_a_record_is_read_with_its_secrets_masked() -> None:
    record = AuditRecord(
        seq=4,
        event_id=uuid.uuid4(),
        event_type="request.submitted",
        source="request-api",
        subject=PROVISION,
        tenant="acme",
        occurred_at=T0,
        service="request-api",
        step="submission",
        outcome="requested",
        envelope={"data": {"parameters": {"name": "orders", "admin_password": "hunter2"}}},
    )
    entry = entry_of(record)
    assert entry.data == {"parameters": {"name": "orders", "admin_password": REDACTED}}
    assert (entry.seq, entry.event_type, entry.occurred_at) == (4, "request.submitted", T0)
