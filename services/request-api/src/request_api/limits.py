"""Limits on what a caller may ask of the API: rate limits per key and per tenant, and a cap on
a tenant's requests in flight. All answer 429 with `Retry-After`.

Delivered as a wrapper of the authentication dependency, so every /v1 route gets them by
being given the wrapped one.

The rate limits count in this replica's memory (moving window). That is acceptable because
they protect the service from a runaway client rather than meter a contract: with N replicas
behind a balancer a caller gets at most N times its limit, and a restart forgets the windows.
A shared storage (the `limits` library's Redis or Memcached backends, one URI away) would
make the limit exact across replicas at the cost of a network round trip on every call and a
dependency that must be up for the API to answer. The in-flight cap needs no such storage:
it counts the tenant's requests in the database.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from fastapi import Request
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from apikeys import ApiKeyBearer, Caller
from events import ServiceRuntime
from events.http import ProblemError
from request_api import limit_rules, limits_repository
from request_api.settings import Settings

Authenticate = Callable[[Request], Awaitable[Caller]]


class Limits:
    def __init__(self, runtime: ServiceRuntime, settings: Settings) -> None:
        self._runtime = runtime
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_key = limit_rules.parse_rate_limit(settings.rate_limit_per_key)
        self._per_tenant = limit_rules.parse_rate_limit(settings.rate_limit_per_tenant)
        self._in_flight_cap = settings.in_flight_per_tenant
        self._in_flight_retry_after_s = settings.in_flight_retry_after_s

    async def check(self, request: Request, caller: Caller) -> None:
        await self._check_rates(caller)
        adding = limit_rules.requests_added(
            request.method,
            request.url.path,
            request.query_params.get("dry_run"),
            await _json_body(request) if request.url.path == limit_rules.SUBMIT_BUNDLE else None,
        )
        if adding:
            await self._check_in_flight(caller.tenant, adding)

    async def _check_rates(self, caller: Caller) -> None:
        per_key = _key_limit(caller.rate_limit) if caller.rate_limit else self._per_key
        checks = [
            (per_key, ("key", caller.key_id), "this API key"),
            (self._per_tenant, ("tenant", caller.tenant), "this tenant"),
        ]
        # Test every limit before counting the call against any: a call refused by the
        # tenant's limit must not use up the key's.
        for item, identifiers, whose in checks:
            if not await self._limiter.test(item, *identifiers):
                await self._refuse(item, identifiers, whose)
        for item, identifiers, whose in checks:
            if not await self._limiter.hit(item, *identifiers):
                await self._refuse(item, identifiers, whose)

    async def _refuse(self, item: RateLimitItem, identifiers: tuple[str, ...], whose: str) -> None:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        wait_s = limit_rules.retry_after_s(stats.reset_time, time.time())
        raise too_many(f"The rate limit of {whose} ({item}) is reached.", wait_s)

    async def _check_in_flight(self, tenant: str, adding: int) -> None:
        async with self._runtime.tenant_transaction(tenant) as session:
            in_flight = await limits_repository.count_in_flight(session, tenant=tenant)
        if limit_rules.exceeds_in_flight(in_flight, adding, self._in_flight_cap):
            detail = (
                f"The tenant has {in_flight} requests in flight and may have at most "
                f"{self._in_flight_cap}; wait for some to end."
            )
            raise too_many(detail, self._in_flight_retry_after_s)


def within_limits(authenticate: ApiKeyBearer, limits: Limits) -> ApiKeyBearer:
    """`authenticate`, then every limit: the dependency to give the /v1 routers."""
    return authenticate.then(limits.check)


def too_many(detail: str, retry_after_s: int) -> ProblemError:
    return ProblemError(
        429, "Too many requests", detail, headers={"Retry-After": str(retry_after_s)}
    )


@lru_cache(maxsize=1024)
def _key_limit(text: str) -> RateLimitItem:
    # Checked when the key was created, so it parses; cached since every call needs it.
    return limit_rules.parse_rate_limit(text)


async def _json_body(request: Request) -> Any:
    """The body FastAPI has already read and decoded (Starlette keeps it on the request)."""
    try:
        return await request.json()
    except ValueError:
        return None
