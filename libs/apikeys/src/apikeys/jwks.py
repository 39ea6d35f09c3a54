"""The identity provider's signing keys (its JWKS), fetched over HTTP and kept for a while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

log = logging.getLogger(__name__)

FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]
# A token naming a kid we do not know may mean the provider rotated its keys, or may be junk:
# refetch for it, but never more often than this, so junk cannot make us hammer the provider.
UNKNOWN_KID_REFETCH_S = 30.0


def http_fetch(url: str, timeout_s: float = 5.0) -> FetchJwks:
    async def fetch() -> Mapping[str, Any]:
        # A client per fetch: fetches are minutes apart, and nothing is left to close.
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            answer = await client.get(url)
            answer.raise_for_status()
            body = answer.json()
        if not isinstance(body, dict):
            raise ValueError("a JWKS is a JSON object")
        return body

    return fetch


def usable_keys(jwks: Mapping[str, Any], algorithms: frozenset[str]) -> dict[str | None, PyJWK]:
    """The signing keys of a JWKS by kid, leaving out any whose algorithm is not allowed
    (a symmetric `oct` key, say) and any we cannot read."""
    keys: dict[str | None, PyJWK] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except PyJWKError:
            continue
        if key.algorithm_name in algorithms:
            keys[key.key_id] = key
    return keys


class JwksCache:
    def __init__(
        self,
        fetch: FetchJwks,
        *,
        algorithms: frozenset[str],
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch, self._algorithms, self._cache_s, self._clock = (
            fetch,
            algorithms,
            cache_s,
            clock,
        )
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK | None:
        """The key a token names; a token without a kid gets the only key, if there is one."""
        if self._age() > self._cache_s:
            await self._refresh(older_than=self._cache_s)
        found = self._find(kid)
        if found is None and kid is not None and self._age() > UNKNOWN_KID_REFETCH_S:
            await self._refresh(older_than=UNKNOWN_KID_REFETCH_S)
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def _refresh(self, *, older_than: float) -> None:
        async with self._lock:
            if self._age() <= older_than:  # another caller refreshed while we waited
                return
            # Counted as a fetch even when it fails: a provider that is down is retried at
            # the same pace, and meanwhile the keys we had stay in use.
            self._fetched_at = self._clock()
            try:
                self._keys = usable_keys(await self._fetch(), self._algorithms)
            except (httpx.HTTPError, ValueError) as error:
                log.warning("could not fetch the identity provider's keys: %s", error)
