"""One request, one trace, across every service."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tests.e2e.client import Platform

pytestmark = pytest.mark.integration

SERVICES = {"request-api", "validator", "allocator", "configurator", "deployer", "auditor"}


def spans_of(platform: Platform, request_id: str) -> list[dict]:
    spans = []
    for path in platform.stack.config.traces_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            if span.get("attributes", {}).get("request.id") == request_id:
                spans.append(span)
    return spans


async def test_one_trace_id_covers_all_six_services(platform: Platform):
    submitted = await platform.submit("postgres_schema", name=f"traced_{uuid.uuid4().hex[:12]}")
    request = await platform.wait_terminal(submitted["id"])
    assert request["status"] in {"completed", "failed"}

    services: set[str] = set()
    for _ in range(40):  # spans are exported in batches every few seconds
        spans = spans_of(platform, request["id"])
        services = {s["resource"]["attributes"]["service.name"] for s in spans}
        if services == SERVICES:
            break
        await asyncio.sleep(0.5)
    assert services == SERVICES
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    process_spans = [s for s in spans if s["name"].endswith(" process")]
    assert all(s["parent_id"] for s in process_spans), "every consumer span has a parent"
