"""The independent SCIM checker (scim2-tester) against the running stack's /scim/v2: every
check it runs must pass (discovery, CRUD of Users and Groups, attributes, PATCH add / remove /
replace, errors), in a tenant whose entitlements admit any value."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from scim2_client import BaseSyncSCIMClient
from scim2_client.errors import RequestNetworkException
from scim2_tester import Status, check_server
from tests.e2e.client import key_for

from devstack.stack import Stack

pytestmark = pytest.mark.integration

RETRIES = 5
CONFORMANCE_TENANT = "scim-conformance"
PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED}


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client's network engine speaks httpx2; this is its engine interface over the
    httpx the workspace has."""

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self.client.build_request("GET", endpoint).url
        base = self.client.base_url
        return url.host == base.host and url.port == base.port and url.path.startswith(base.path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """As an identity provider does, waits out the key's rate limit (429 Retry-After)."""
        for _ in range(RETRIES):
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.RequestError as error:
                raise RequestNetworkException() from error
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response


def run_checker(base_url: str, key: str) -> list[Any]:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    ) as http:
        return list(check_server(HttpxSCIMClient(http)))


async def test_scim2_tester_finds_no_failure(stack: Stack) -> None:
    # The checker invents attribute values (departments, group names with members) that no
    # real tenant's entitlements would admit. Protocol compliance is checked here, in a tenant
    # whose policy admits any value (tests/seed/entitlements.json); that the policy refuses
    # what is not allowed is tests/e2e/test_entitlements.py's job.
    key = await key_for(stack, name="scim-checker", tenant=CONFORMANCE_TENANT, roles=["admin"])
    base_url = f"{stack.service_url('request-api')}/scim/v2/"
    results = await asyncio.to_thread(run_checker, base_url, key)
    failures = [
        f"{r.title} [{r.resource_type}] {r.status.name}: {r.reason}"
        for r in results
        if r.status not in PASSING
    ]
    print("scim2-tester:", dict(Counter(r.status.name for r in results)))
    for skipped in (r for r in results if r.status == Status.SKIPPED):
        print(f"  skipped: {skipped.title} [{skipped.resource_type}]: {skipped.reason}")
    assert len(results) > 50, results
    assert failures == [], "\n".join(failures)
