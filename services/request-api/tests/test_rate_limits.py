"""The rate limits on the real `limits` memory storage; a GET adds nothing in flight, so no
database is involved."""

from pathlib import Path
from typing import cast

import pytest
from fastapi import Request

from apikeys import Caller
from events import ServiceRuntime
from events.http import ProblemError
from request_api.limits import Limits
from request_api.settings import Settings


def limits(*, per_key: str, per_tenant: str) -> Limits:
    settings = Settings(
        database_url="postgresql+asyncpg://unused/unused",
        identity_database_url="postgresql+asyncpg://unused/unused",
        webhook_key_file=Path("unused"),
        rate_limit_per_key=per_key,
        rate_limit_per_tenant=per_tenant,
    )
    # Reached only when a call would add requests in flight, which a GET never does.
    no_runtime = cast(ServiceRuntime, None)
    return Limits(no_runtime, settings)


def get_catalog() -> Request:
    scope = {"type": "http", "method": "GET", "path": "/v1/catalog", "headers": []}
    return Request({**scope, "query_string": b""})


def caller(key_id: str, tenant: str = "acme", rate_limit: str | None = None) -> Caller:
    return Caller(
        key_id=key_id,
        name="ci",
        scopes=("requests",),
        tenant=tenant,
        roles=("requester",),
        rate_limit=rate_limit,
    )


async def refusal(checks: Limits, who: Caller) -> ProblemError:
    with pytest.raises(ProblemError) as refused:
        await checks.check(get_catalog(), who)
    return refused.value


async def test_a_key_over_the_default_limit_waits() -> None:
    checks = limits(per_key="2/minute", per_tenant="100/minute")
    for _ in range(2):
        await checks.check(get_catalog(), caller("k1"))
    refused = await refusal(checks, caller("k1"))
    assert refused.status == 429 and "API key" in (refused.detail or "")
    assert refused.headers is not None
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60


async def test_a_key_of_its_own_limit_uses_it() -> None:
    checks = limits(per_key="1/minute", per_tenant="100/minute")
    for _ in range(3):
        await checks.check(get_catalog(), caller("k1", rate_limit="3/minute"))
    assert (await refusal(checks, caller("k1", rate_limit="3/minute"))).status == 429


async def test_the_tenant_limit_spans_its_keys_and_spares_other_tenants() -> None:
    checks = limits(per_key="10/minute", per_tenant="3/minute")
    for key_id in ("k1", "k2", "k3"):
        await checks.check(get_catalog(), caller(key_id))
    refused = await refusal(checks, caller("k4"))
    assert "tenant" in (refused.detail or "")
    await checks.check(get_catalog(), caller("k5", tenant="globex"))
