"""Compliance reports and evidence packs end to end: a fresh tenant's period is seeded with a
known set of requests, and every section of its report is checked against what the test
itself submitted (never against the report's own code); the CSV and HTML forms agree with the
JSON; a request's evidence pack verifies offline, and a tampered one does not."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.client import TERMINAL, Platform, key_for
from tests.polling import eventually

pytestmark = pytest.mark.integration

SECTIONS = (
    "activity",
    "access",
    "approvals",
    "bypassed_approvals",
    "self_approvals",
    "leases_past_end",
    "drift",
    "cost",
    "cost_per_tenant",
)
# Monthly prices read straight from the catalog's files, not through any of the platform's code.
CATALOG_ITEMS = Path(__file__).parents[2] / "libs" / "catalog" / "src" / "catalog" / "items"
PRICES = {
    path.stem: float(json.loads(path.read_text())["cost"]["monthly"])
    for path in CATALOG_ITEMS.glob("*.json")
}


@dataclass
class Person:
    name: str
    api: httpx.AsyncClient
    audit: httpx.AsyncClient

    async def submit(self, catalog_item: str, **parameters: Any) -> str:
        body = {"catalog_item": catalog_item, "parameters": parameters}
        answer = await self.api.post("/v1/requests", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    async def request(self, request_id: str) -> dict[str, Any]:
        answer = await self.api.get(f"/v1/requests/{request_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def wait_for(self, request_id: str, *statuses: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            request = await self.request(request_id)
            if request["status"] in TERMINAL and request["status"] not in statuses:
                raise AssertionError(f"ended {request['status']} instead: {request}")
            return request if request["status"] in statuses else None

        return dict(await eventually(reached, timeout_s=90))


@dataclass
class Tenant:
    name: str
    people: dict[str, Person]


@pytest.fixture
async def tenant(platform: Platform) -> AsyncIterator[Tenant]:
    """A tenant of its own, so that no other test's requests are in its report."""
    name = f"rep-{uuid.uuid4().hex[:8]}"
    people: dict[str, Person] = {}
    try:
        for role in ("requester", "approver", "auditor"):
            person_name = f"{role[:3]}-{uuid.uuid4().hex[:6]}"
            key = await key_for(platform.stack, name=person_name, tenant=name, roles=[role])
            headers = {"Authorization": f"Bearer {key}"}
            people[role] = Person(
                person_name,
                httpx.AsyncClient(
                    base_url=platform.stack.service_url("request-api"),
                    headers=headers,
                    timeout=30.0,
                ),
                httpx.AsyncClient(
                    base_url=platform.stack.service_url("auditor"), headers=headers, timeout=30.0
                ),
            )
        yield Tenant(name, people)
    finally:
        for someone in people.values():
            await someone.api.aclose()
            await someone.audit.aclose()


async def recorded(auditor: Person, request_id: str, event_type: str) -> None:
    """The auditor follows the pipeline's topics: wait until it has the request's event."""

    seen: list[str] = []

    async def has() -> bool:
        answer = await auditor.audit.get(f"/v1/audit/requests/{request_id}")
        seen[:] = (
            [answer.text[:300]]
            if answer.status_code != 200
            else [event["type"] for event in answer.json()["events"]]
        )
        return event_type in seen

    await eventually(has, f"{event_type} of {request_id} (seen: {seen})", timeout_s=60)


def table_of(page: str) -> dict[str, list[list[str]]]:
    """Each <h2> section's table rows (header first), as text, from the HTML page."""

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sections: dict[str, list[list[str]]] = {}
            self.heading: str | None = None
            self.in_heading = False
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "h2":
                self.in_heading, self.heading = True, ""
            elif tag == "tr" and self.heading is not None:
                self.sections.setdefault(self.heading, []).append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "h2":
                self.in_heading = False
            elif tag in ("td", "th") and self.cell is not None and self.heading is not None:
                self.sections[self.heading][-1].append("".join(self.cell))
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.in_heading:
                self.heading = (self.heading or "") + data
            elif self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(page)
    return parser.sections


def as_text(value: Any) -> str:
    """A JSON value as the CSV writes it (no value here starts like a formula)."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def offline(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "auditor.offline", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False)


async def test_a_seeded_period_is_reported_as_it_happened(tenant: Tenant):
    people = tenant.people
    rita, ann, audrey = people["requester"], people["approver"], people["auditor"]
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(seconds=2)

    # What the period holds: three provisions completed (one after an approval by someone
    # else), one rejected, and one deprovision.
    schema_id = await rita.submit("postgres_schema", name=f"rep_{uuid.uuid4().hex[:8]}")
    account_id = await rita.submit(
        "directory_account",
        name=f"acct_{uuid.uuid4().hex[:8]}",
        given_name="Bob",
        family_name="Report",
        department="web",
        assignee=bob,
    )
    rejected_id = await rita.submit("postgres_database", name="postgres")
    database_id = await rita.submit(
        "postgres_database", name=f"rep_{uuid.uuid4().hex[:8]}", connection_limit=30
    )
    await rita.wait_for(database_id, "awaiting_approval")
    decision = await ann.api.post(
        f"/v1/requests/{database_id}/approve", json={"justification": "sized for the Q3 load"}
    )
    assert decision.status_code == 202, decision.text
    schema = await rita.wait_for(schema_id, "completed")
    account = await rita.wait_for(account_id, "completed")
    await rita.wait_for(rejected_id, "rejected")
    database = await rita.wait_for(database_id, "completed")
    removal = await rita.api.delete(f"/v1/resources/{account['resource_id']}")
    assert removal.status_code == 202, removal.text
    removal_id = str(removal.json()["id"])
    await rita.wait_for(removal_id, "completed")
    for request_id, last in (
        (schema_id, "provisioning.completed"),
        (account_id, "provisioning.completed"),
        (rejected_id, "request.rejected"),
        (database_id, "provisioning.completed"),
        (removal_id, "provisioning.completed"),
    ):
        await recorded(audrey, request_id, last)
    end = datetime.now(UTC) + timedelta(seconds=1)
    resources = {
        resource["id"]: resource
        for resource in [
            (await rita.api.get(f"/v1/resources/{request['resource_id']}")).json()
            for request in (schema, account, database)
        ]
    }
    period = {"from": start.isoformat(), "to": end.isoformat()}

    answer = await audrey.audit.get("/v1/audit/reports", params=period)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    sections = report["sections"]
    assert (report["tenant"], report["from"], report["to"]) == (
        tenant.name,
        start.isoformat(),
        end.isoformat(),
    )
    assert set(sections) == set(SECTIONS)

    # Activity: counted from what was submitted above.
    expected_activity = Counter(
        {
            ("postgres_schema", "provision", "submitted"): 1,
            ("postgres_schema", "provision", "completed"): 1,
            ("directory_account", "provision", "submitted"): 1,
            ("directory_account", "provision", "completed"): 1,
            ("directory_account", "deprovision", "submitted"): 1,
            ("directory_account", "deprovision", "completed"): 1,
            ("postgres_database", "provision", "submitted"): 2,
            ("postgres_database", "provision", "completed"): 1,
            ("postgres_database", "provision", "rejected"): 1,
        }
    )
    found_activity = Counter(
        {
            (row["catalog_item"], row["operation"], outcome): row[outcome]
            for row in sections["activity"]
            for outcome in ("submitted", "completed", "failed", "rejected", "cancelled")
            if row[outcome]
        }
    )
    assert found_activity == expected_activity
    assert {row["tenant"] for row in sections["activity"]} == {tenant.name}

    # Access: the account went to bob (its assignee) and was taken back; the rest to rita.
    assert sorted(
        (row["person"], row["change"], row["catalog_item"], row["resource_id"])
        for row in sections["access"]
    ) == sorted(
        [
            (rita.name, "granted", "postgres_schema", schema["resource_id"]),
            (bob, "granted", "directory_account", account["resource_id"]),
            (bob, "removed", "directory_account", account["resource_id"]),
            (rita.name, "granted", "postgres_database", database["resource_id"]),
        ]
    )

    # Approvals: one decision, by ann, on rita's request; nothing bypassed, nobody their own.
    [approval] = sections["approvals"]
    assert (
        approval["request_id"],
        approval["requester"],
        approval["approver"],
        approval["decision"],
        approval["settled"],
    ) == (database_id, rita.name, ann.name, "approved", True)
    requested = datetime.fromisoformat(approval["requested_at"])
    decided = datetime.fromisoformat(approval["decided_at"])
    assert start <= requested <= decided <= end
    assert approval["justification"] == "sized for the Q3 load"
    assert sections["bypassed_approvals"] == []
    assert sections["self_approvals"] == []
    assert sections["leases_past_end"] == []
    assert sections["drift"] == []

    # Cost: each resource active from its creation to its retirement or the period's end.
    expected_days: dict[str, float] = {}
    for resource in resources.values():
        created = datetime.fromisoformat(resource["created_at"])
        retired = resource["retired_at"]
        until = datetime.fromisoformat(retired) if retired else end
        expected_days[resource["catalog_item"]] = (until - created) / timedelta(days=1)
    cost = {row["catalog_item"]: row for row in sections["cost"]}
    assert set(cost) == set(expected_days)
    for item, days in expected_days.items():
        assert cost[item]["resources"] == 1
        # The auditor's times are the events'; the request-api's, when it heard of them.
        assert abs(cost[item]["active_days"] - days) < 10 / 86400, (item, cost[item], days)
        monthly = PRICES[item]
        assert abs(cost[item]["cost"] - monthly * days / 30) <= 0.01, (item, cost[item], days)
    [total] = sections["cost_per_tenant"]
    assert total["resources"] == 3
    assert total["unpriced"] == ""
    expected_total = sum(PRICES[item] * days / 30 for item, days in expected_days.items())
    assert abs(total["cost"] - expected_total) <= 0.03

    # CSV, a section at a time, and the HTML page agree with the JSON.
    page = await audrey.audit.get("/v1/audit/reports", params={**period, "format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    tables = table_of(page.text)
    assert len(tables) == len(SECTIONS)
    for name, heading in zip(SECTIONS, tables, strict=True):
        answer = await audrey.audit.get(
            "/v1/audit/reports", params={**period, "format": "csv", "section": name}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(answer.text)))
        header, body = rows[0], rows[1:]
        assert body == [[as_text(value) for value in row.values()] for row in sections[name]]
        assert all(list(row) == header for row in sections[name])
        html_rows = tables[heading]
        assert html_rows[0] == header, heading
        shown = [[{"true": "yes", "false": "no"}.get(v, v) for v in row] for row in body]
        assert html_rows[1:] == (shown or [["none"]]), heading
    no_section = await audrey.audit.get("/v1/audit/reports", params={**period, "format": "csv"})
    assert no_section.status_code == 422

    # Only the tenant's admins and auditors read reports; periods are bounded; reads recorded.
    refused = await rita.audit.get("/v1/audit/reports", params=period)
    assert refused.status_code == 403
    too_long = {"from": (end - timedelta(days=400)).isoformat(), "to": end.isoformat()}
    backwards = {"from": end.isoformat(), "to": start.isoformat()}
    naive = {"from": "2026-01-01T00:00:00", "to": end.isoformat()}
    for params in (too_long, backwards, naive):
        assert (await audrey.audit.get("/v1/audit/reports", params=params)).status_code == 422
    reads = await audrey.audit.get(
        "/v1/audit/records", params={"event_type": "audit.read", "person": audrey.name}
    )
    assert any(read["data"]["query"].get("view") == "report" for read in reads.json()["items"]), (
        reads.text
    )


async def test_an_evidence_pack_verifies_offline_and_a_tampered_one_does_not(
    platform: Platform, tenant: Tenant, tmp_path: Path
):
    rita, audrey = tenant.people["requester"], tenant.people["auditor"]
    request_id = await rita.submit("postgres_schema", name=f"ev_{uuid.uuid4().hex[:8]}")
    await rita.wait_for(request_id, "completed")
    await recorded(audrey, request_id, "provisioning.completed")

    async def sealed_pack() -> httpx.Response | None:
        answer = await audrey.audit.get(f"/v1/audit/requests/{request_id}/evidence")
        assert answer.status_code in (200, 409), answer.text
        return answer if answer.status_code == 200 else None

    answer = await eventually(sealed_pack, timeout_s=30)
    assert answer.headers["content-type"] == "application/zip"
    pack = tmp_path / "evidence.zip"
    pack.write_bytes(answer.content)
    key = tmp_path / "audit-public-key.pem"
    key.write_text((await audrey.audit.get("/v1/audit/public-key")).text)
    with zipfile.ZipFile(pack) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    records = [json.loads(line) for line in files["records.jsonl"].decode().splitlines()]
    journey = (await audrey.audit.get(f"/v1/audit/requests/{request_id}")).json()["events"]
    assert [r["seq"] for r in records] == [e["seq"] for e in journey]
    assert {"proofs.json", "checkpoints.jsonl", "report.html", "README.txt"} <= set(files)
    summary = json.loads(files["report.json"])
    assert summary["request_id"] == request_id and summary["last_status"] == "completed"
    assert [s["name"] for s in summary["timeline"]["steps"]][-1] == "completion"

    verified = offline("--evidence", str(pack), "--public-key", str(key))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["ok"] and verdict["records"] == len(records)
    assert verdict["request_id"] == request_id

    # One byte of one record changed, the archive rebuilt around it.
    text = files["records.jsonl"].decode()
    at = text.index('"actor": "') + len('"actor": "')
    files["records.jsonl"] = (text[:at] + chr(ord(text[at]) ^ 1) + text[at + 1 :]).encode()
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    refused = offline("--evidence", str(tampered), "--public-key", str(key))
    assert refused.returncode == 1
    assert "does not match its leaf hash" in refused.stderr

    # And one byte of the archive itself.
    damaged = tmp_path / "damaged.zip"
    raw = bytearray(answer.content)
    raw[len(raw) // 4] ^= 0x01
    damaged.write_bytes(bytes(raw))
    assert offline("--evidence", str(damaged), "--public-key", str(key)).returncode == 1

    others = await rita.audit.get(f"/v1/audit/requests/{request_id}/evidence")
    assert others.status_code == 403
    ivy = await key_for(platform.stack, name="ivy", tenant="ten-seats", roles=["auditor"])
    stranger = await audrey.audit.get(
        f"/v1/audit/requests/{request_id}/evidence", headers={"Authorization": f"Bearer {ivy}"}
    )
    assert stranger.status_code == 404, stranger.text
    missing = await audrey.audit.get(f"/v1/audit/requests/{uuid.uuid4()}/evidence")
    assert missing.status_code == 404
