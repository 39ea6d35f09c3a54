import csv
import dataclasses
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditor.compliance.formats import csv_cell, report_csv, report_html
from auditor.compliance.reports import SECTIONS, Period, Price, Report, build
from auditor.entries import Entry, entry_of
from auditor.facts import facts_of
from auditor.models import AuditRecord

TENANT = "acme"
START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=30)
PERIOD = Period(START, END)
BEFORE = START - timedelta(days=10)
AFTER = END + timedelta(days=1)
HOSTILE = "<script>alert(1)</script>"
FORMULA = "=cmd|' /C calc'!A0"


class Log:
    """Synthetic audit records, as the auditor derives them from events (auditor.facts)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, event_type: str, at: datetime, /, **data: Any) -> Entry:
        said = facts_of(event_type, "test", str(data.get("request_id", "")), data)
        entry = Entry(
            seq=len(self.entries) + 1,
            event_type=event_type,
            occurred_at=at,
            tenant=TENANT,
            actor=said.actor,
            on_behalf_of=said.on_behalf_of,
            request_id=said.request_id,
            resource_id=said.resource_id,
            reason=said.reason,
            after=said.after,
            data=data,
        )
        self.entries.append(entry)
        return entry

    def submit(
        self,
        item: str,
        at: datetime,
        *,
        requester: str = "rita",
        operation: str = "provision",
        resource_id: str | None = None,
        **parameters: Any,
    ) -> dict[str, Any]:
        request = {
            "request_id": str(uuid.uuid4()),
            "catalog_item": item,
            "parameters": parameters,
            "requester": requester,
            "tenant": TENANT,
            "operation": operation,
            "resource_id": resource_id or str(uuid.uuid4()),
        }
        self.add("request.submitted", at, **request)
        return request

    def pipeline(self, request: dict[str, Any], at: datetime, *, validate: bool = True) -> None:
        """From validation to completion, a minute a step."""
        steps = ["resource.allocated", "resource.configured", "provisioning.completed"]
        if validate:
            steps.insert(0, "request.validated")
        for minute, kind in enumerate(steps):
            self.add(kind, at + timedelta(minutes=minute), **request)

    def provision(self, item: str, at: datetime, **options: Any) -> dict[str, Any]:
        request = self.submit(item, at, **options)
        self.pipeline(request, at + timedelta(minutes=1))
        return request

    def awaiting(self, request: dict[str, Any], at: datetime) -> None:
        reasons = [{"message": "needs an approver", "code": "approval_required"}]
        self.add("request.awaiting_approval", at, **request, reasons=reasons)

    def approve(self, request: dict[str, Any], at: datetime, approver: str) -> None:
        self.add("request.approved", at, **request, approver=approver, justification="ok")

    def report(self, prices: dict[str, Price] | None = None) -> Report:
        return build(TENANT, PERIOD, self.entries, prices=prices)


def section(report: Report, name: str) -> list[dict[str, Any]]:
    return report.sections[name]


def activity_of(report: Report) -> dict[tuple[str, str], dict[str, int]]:
    return {
        (row["catalog_item"], row["operation"]): {
            k: v for k, v in row.items() if k not in ("tenant", "catalog_item", "operation")
        }
        for row in section(report, "activity")
    }


def counts(**given: int) -> dict[str, int]:
    return {"submitted": 0, "completed": 0, "failed": 0, "rejected": 0, "cancelled": 0, **given}


def test_activity_counts_what_happened_in_the_period_per_item_and_operation():
    log = Log()
    day = START + timedelta(days=1)
    log.provision("postgres_schema", day)
    log.provision("postgres_schema", day + timedelta(hours=1))
    rejected = log.submit("postgres_database", day, name="postgres")
    log.add("request.rejected", day, request_id=rejected["request_id"], reasons=[])
    failed = log.submit("postgres_database", day)
    log.add("request.validated", day, **failed)
    log.add("allocation.failed", day, request_id=failed["request_id"], reason="no", code="quota")
    crashed = log.submit("postgres_database", day)
    log.add("validation.failed", day, request_id=crashed["request_id"], reason="bug")
    waiting = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(waiting, day)
    log.add("request.cancellation_requested", day, request_id=waiting["request_id"], reason="x")
    # Cancelled in flight: completed, then undone; the request-api ends it `cancelled`.
    late = log.submit("postgres_schema", day)
    log.add("request.cancellation_requested", day, request_id=late["request_id"], reason="x")
    log.pipeline(late, day)
    log.add("allocation.released", day + timedelta(hours=1), request_id=late["request_id"])
    # Submitted before the period, completed in it; submitted in it, completed after it.
    early = log.submit("postgres_schema", BEFORE)
    log.pipeline(early, START + timedelta(seconds=5), validate=False)
    tail = log.submit("postgres_schema", END - timedelta(minutes=1))
    log.pipeline(tail, END, validate=False)
    removal = log.submit(
        "postgres_schema", day, operation="deprovision", resource_id=early["resource_id"]
    )
    log.pipeline(removal, day)

    report = log.report()

    assert activity_of(report) == {
        ("postgres_schema", "provision"): counts(submitted=4, completed=3, cancelled=1),
        ("postgres_database", "provision"): counts(submitted=3, failed=2, rejected=1),
        ("cloud_vm", "provision"): counts(submitted=1, cancelled=1),
        ("postgres_schema", "deprovision"): counts(submitted=1, completed=1),
    }
    assert all(row["tenant"] == TENANT for row in section(report, "activity"))
    # What occurred after the period's end is not read at all.
    assert report.records == len([e for e in log.entries if e.occurred_at < END])


def test_access_is_granted_to_the_owner_and_removed_from_them():
    log = Log()
    day = START + timedelta(days=2)
    seat = log.provision("software_license", day, product="figma", assignee="bob")
    schema = log.provision("postgres_schema", day + timedelta(hours=1))
    removal = log.submit(
        "software_license",
        day + timedelta(days=1),
        requester="adam",
        operation="deprovision",
        resource_id=seat["resource_id"],
    )
    log.pipeline(removal, day + timedelta(days=1))
    failed = log.submit("laptop", day, assignee="carol")
    log.add("allocation.failed", day, request_id=failed["request_id"], reason="no", code="stock")

    rows = section(log.report(), "access")

    assert [(r["person"], r["change"], r["catalog_item"], r["resource_id"]) for r in rows] == [
        ("bob", "granted", "software_license", seat["resource_id"]),
        ("bob", "removed", "software_license", seat["resource_id"]),
        ("rita", "granted", "postgres_schema", schema["resource_id"]),
    ]
    assert rows[1]["request_id"] == removal["request_id"]
    assert rows[0]["at"] == (day + timedelta(minutes=4)).isoformat()


def test_approvals_list_every_decision_with_request_and_decision_times():
    log = Log()
    day = START + timedelta(days=3)
    request = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(request, day + timedelta(seconds=1))
    decided = day + timedelta(hours=2)
    log.add(
        "approval.decision_recorded",
        day + timedelta(hours=2, seconds=1),
        request_id=request["request_id"],
        approval_id=str(uuid.uuid4()),
        stage="peer_review",
        approver="ann",
        decision="approve",
        justification="fine",
        stage_status="pending",
        at=decided.isoformat(),
    )
    log.add(
        "request.approved",
        day + timedelta(hours=3),
        **request,
        approver="dave",
        justification="paid by web",
        stage="budget_owner",
    )
    log.pipeline(request, day + timedelta(hours=3, minutes=1))
    denied = log.submit("cloud_vm", day, vcpu=16, requester="sam")
    log.awaiting(denied, day)
    log.add(
        "request.denied",
        day + timedelta(hours=4),
        request_id=denied["request_id"],
        approver="approval-clock",
        justification="not decided in time",
    )

    rows = section(log.report(), "approvals")

    assert [
        (r["requester"], r["approver"], r["stage"], r["decision"], r["settled"]) for r in rows
    ] == [
        ("rita", "ann", "peer_review", "approved", False),
        ("rita", "dave", "budget_owner", "approved", True),
        ("sam", "approval-clock", None, "denied", True),
    ]
    assert rows[0]["requested_at"] == (day + timedelta(seconds=1)).isoformat()
    assert rows[0]["decided_at"] == decided.isoformat()  # the decision's own time
    assert rows[1]["decided_at"] == (day + timedelta(hours=3)).isoformat()
    assert rows[1]["justification"] == "paid by web"
    report = log.report()
    assert section(report, "bypassed_approvals") == []
    assert section(report, "self_approvals") == []


def test_a_request_that_went_ahead_without_its_approval_is_a_bypass():
    log = Log()
    day = START + timedelta(days=4)
    skipped = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(skipped, day)
    log.pipeline(skipped, day + timedelta(minutes=5))
    late = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(late, day)
    log.add("resource.allocated", day + timedelta(minutes=4), **late)
    log.approve(late, day + timedelta(minutes=6), "ann")  # approved after it went ahead
    denied = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(denied, day)
    log.add("request.denied", day + timedelta(minutes=1), **denied, approver="ann")
    log.add("provisioning.completed", day + timedelta(minutes=9), **denied)
    # Approved, but recorded after its validation (another topic, read later): no bypass.
    fine = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(fine, day)
    log.add("request.validated", day + timedelta(minutes=2), **fine)
    log.approve(fine, day + timedelta(minutes=1), "ann")
    # A vote is not an approval.
    voted = log.submit("cloud_vm", day, vcpu=12)
    log.awaiting(voted, day)
    log.add(
        "approval.decision_recorded",
        day + timedelta(minutes=1),
        request_id=voted["request_id"],
        approver="ann",
        decision="approve",
        stage="peer_review",
    )
    log.add("request.validated", day + timedelta(minutes=2), **voted)
    # Needed no approval at all.
    log.provision("postgres_schema", day)

    rows = section(log.report(), "bypassed_approvals")

    assert [(r["request_id"], r["progressed_by"]) for r in rows] == [
        (voted["request_id"], "request.validated"),
        (late["request_id"], "resource.allocated"),
        (skipped["request_id"], "request.validated"),
        (denied["request_id"], "provisioning.completed"),
    ]
    assert rows[1]["approved_at"] == (day + timedelta(minutes=6)).isoformat()


def test_a_requester_deciding_their_own_request_is_a_self_approval():
    log = Log()
    day = START + timedelta(days=5)
    own = log.submit("cloud_vm", day, vcpu=12, requester="rita")
    log.awaiting(own, day)
    log.add(
        "approval.decision_recorded",
        day + timedelta(minutes=1),
        request_id=own["request_id"],
        approver="rita",
        decision="approve",
        stage="peer_review",
    )
    log.approve(own, day + timedelta(minutes=2), "rita")
    other = log.submit("cloud_vm", day, vcpu=12, requester="sam")
    log.awaiting(other, day)
    log.approve(other, day + timedelta(minutes=2), "ann")

    rows = section(log.report(), "self_approvals")

    assert [(r["request_id"], r["approver"], r["decision"]) for r in rows] == [
        (own["request_id"], "rita", "approved"),
        (own["request_id"], "rita", "approved"),
    ]
    assert rows[0]["requester"] == "rita"


def test_a_decision_by_whoever_the_request_was_filed_for_is_a_self_approval():
    log = Log()
    day = START + timedelta(days=5)
    request = log.submit("cloud_vm", day, vcpu=12, requester="hr-bot")
    # Filed by a bot for rita: the bot is the requester, rita whom it was filed for.
    log.entries[-1] = dataclasses.replace(log.entries[-1], on_behalf_of="rita")
    log.awaiting(request, day)
    log.approve(request, day + timedelta(minutes=2), "rita")

    rows = section(log.report(), "self_approvals")

    assert [(r["approver"], r["requester"]) for r in rows] == [("rita", "hr-bot")]


def test_resources_past_their_lease_and_with_unresolved_drift():
    log = Log()
    day = START + timedelta(days=1)
    lapsed = log.provision("cloud_vm", day)
    extended = log.provision("cloud_vm", day)
    removed = log.provision("cloud_vm", day)
    future = log.provision("cloud_vm", day)
    for request, expires in (
        (lapsed, END - timedelta(days=1)),
        (extended, END - timedelta(days=2)),
        (removed, END - timedelta(days=3)),
        (future, END + timedelta(days=3)),
    ):
        log.add(
            "lease.expiring",
            day + timedelta(days=1),
            request_id=request["request_id"],
            resource_id=request["resource_id"],
            expires_at=expires.isoformat(),
        )
    log.add(
        "lease.extended",
        day + timedelta(days=2),
        request_id=extended["request_id"],
        resource_id=extended["resource_id"],
        expires_at=(END + timedelta(days=30)).isoformat(),
        extended_by="rita",
    )
    gone = log.submit(
        "cloud_vm",
        END - timedelta(days=2),
        operation="deprovision",
        resource_id=removed["resource_id"],
    )
    log.pipeline(gone, END - timedelta(days=2))

    drifted, fixed, dropped = (log.provision("storage_bucket", day) for _ in range(3))
    for request in (drifted, fixed, dropped):
        log.add(
            "drift.detected",
            day + timedelta(days=3),
            request_id=request["request_id"],
            resource_id=request["resource_id"],
            differences=["versioning: expected on, found off", FORMULA],
        )
    log.add(
        "drift.resolved",
        day + timedelta(days=4),
        request_id=fixed["request_id"],
        resource_id=fixed["resource_id"],
    )
    after = log.submit(
        "storage_bucket",
        day + timedelta(days=5),
        operation="deprovision",
        resource_id=dropped["resource_id"],
    )
    log.pipeline(after, day + timedelta(days=5))
    # Resolved only after the period: still unresolved at its end.
    log.add(
        "drift.resolved",
        AFTER,
        request_id=drifted["request_id"],
        resource_id=drifted["resource_id"],
    )

    report = log.report()

    assert section(report, "leases_past_end") == [
        {
            "resource_id": lapsed["resource_id"],
            "catalog_item": "cloud_vm",
            "owner": "rita",
            "expires_at": (END - timedelta(days=1)).isoformat(),
        }
    ]
    assert section(report, "drift") == [
        {
            "resource_id": drifted["resource_id"],
            "catalog_item": "storage_bucket",
            "owner": "rita",
            "detected_at": (day + timedelta(days=3)).isoformat(),
            "differences": f"versioning: expected on, found off; {FORMULA}",
        }
    ]


def test_cost_is_the_monthly_price_prorated_over_the_active_time_in_the_period():
    log = Log()
    # Active the last 20 days of the period: two thirds of a 30-day month.
    vm = log.submit("cloud_vm", START + timedelta(days=10) - timedelta(minutes=4))
    log.pipeline(vm, START + timedelta(days=10) - timedelta(minutes=3))
    # Active from before the period until its deprovision 6 days into it.
    old = log.submit("cloud_vm", BEFORE)
    log.pipeline(old, BEFORE)
    removal = log.submit(
        "cloud_vm",
        START + timedelta(days=6),
        operation="deprovision",
        resource_id=old["resource_id"],
    )
    log.pipeline(removal, START + timedelta(days=6) - timedelta(minutes=3))
    # Cancelled in time: never handed over, costs nothing.
    cancelled = log.submit("cloud_vm", START)
    log.add("request.cancellation_requested", START, request_id=cancelled["request_id"])
    log.pipeline(cancelled, START)
    log.add("allocation.released", START + timedelta(hours=1), request_id=cancelled["request_id"])
    # No price known for this item.
    log.provision("laptop", START + timedelta(days=15) - timedelta(minutes=4), assignee="bob")

    report = log.report({"cloud_vm": Price(40.0), "postgres_schema": Price(2.0)})

    assert section(report, "cost") == [
        {
            "tenant": TENANT,
            "catalog_item": "cloud_vm",
            "resources": 2,
            "active_days": 26.0,
            "monthly_price": 40.0,
            "currency": "EUR",
            "cost": round(40.0 * 26 / 30, 2),
        },
        {
            "tenant": TENANT,
            "catalog_item": "laptop",
            "resources": 1,
            "active_days": 15.0,
            "monthly_price": None,
            "currency": None,
            "cost": None,
        },
    ]
    assert section(report, "cost_per_tenant") == [
        {
            "tenant": TENANT,
            "resources": 3,
            "active_days": 41.0,
            "currency": "EUR",
            "cost": round(40.0 * 26 / 30, 2),
            "unpriced": "laptop",
        }
    ]
    unpriced = log.report()
    assert [row["cost"] for row in section(unpriced, "cost")] == [None, None]
    assert "no prices known" in unpriced.to_dict()["cost_rule"]


def test_a_report_of_nothing_has_every_section_empty_and_renders():
    report = Log().report()
    assert report.sections == {name: [] for name in SECTIONS}
    for name in SECTIONS:
        assert list(csv.reader(io.StringIO(report_csv(report, name)))) == [list(SECTIONS[name])]
    assert report_html(report).count("<table>") == len(SECTIONS)


def hostile_report() -> Report:
    log = Log()
    day = START + timedelta(days=1)
    seat = log.provision("software_license", day, product="figma", assignee=HOSTILE)
    for prefix in "=+-@":
        log.provision("software_license", day, product="figma", assignee=f"{prefix}cmd|' /C x'")
    log.add(
        "drift.detected",
        day + timedelta(days=1),
        request_id=seat["request_id"],
        resource_id=seat["resource_id"],
        differences=[HOSTILE, FORMULA],
    )
    return log.report()


def test_csv_cells_never_start_a_formula():
    report = hostile_report()
    rows = list(csv.DictReader(io.StringIO(report_csv(report, "access"))))
    people = sorted(row["person"] for row in rows)
    assert people == sorted([HOSTILE, *(f"'{p}cmd|' /C x'" for p in "=+-@")])
    drift = list(csv.DictReader(io.StringIO(report_csv(report, "drift"))))
    assert drift[0]["differences"] == f"{HOSTILE}; {FORMULA}"  # not at the start: harmless
    assert (csv_cell(-3), csv_cell(2.5), csv_cell(True), csv_cell(None)) == (
        "-3",
        "2.5",
        "true",
        "",
    )
    assert csv_cell("-3") == "'-3" and csv_cell("\tx") == "'\tx"


def test_html_escapes_every_cell():
    page = report_html(hostile_report())
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "=cmd|&#x27; /C calc&#x27;!A0" in page
    assert page.startswith("<!DOCTYPE html>") and page.count("<h2>") == len(SECTIONS)


def test_the_json_form_is_plain_json_with_the_period():
    about = json.loads(json.dumps(hostile_report().to_dict()))
    assert (about["tenant"], about["from"], about["to"]) == (
        TENANT,
        START.isoformat(),
        END.isoformat(),
    )
    assert set(about["sections"]) == set(SECTIONS)
    for name, rows in about["sections"].items():
        assert all(list(row) == list(SECTIONS[name]) for row in rows), name


def test_an_entry_is_read_from_an_audit_record():
    record = AuditRecord(
        seq=7,
        event_id=uuid.uuid4(),
        event_type="request.approved",
        source="request-api",
        subject="r",
        tenant=TENANT,
        occurred_at=START,
        actor="ann",
        on_behalf_of="rita",
        request_id="r",
        resource_id=None,
        reason="ok",
        after=None,
        envelope={"type": "request.approved", "data": {"approver": "ann"}},
    )
    entry = entry_of(record)
    assert (entry.seq, entry.actor, entry.on_behalf_of, entry.data) == (
        7,
        "ann",
        "rita",
        {"approver": "ann"},
    )
    record.envelope = {"data": ["not", "an", "object"]}
    assert entry_of(record).data == {}


@pytest.mark.parametrize("moment", [START - timedelta(microseconds=1), END])
def test_the_period_is_half_open(moment: datetime):
    assert moment not in PERIOD and START in PERIOD
