"""Every API transaction runs inside one tenant: the queries name the tenant, and PostgreSQL's
row-level security refuses any row of another tenant even if a query forgets to."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from events import ServiceRuntime


@contextlib.asynccontextmanager
async def tenant_transaction(runtime: ServiceRuntime, tenant: str) -> AsyncIterator[AsyncSession]:
    """A unit of work for an API route acting for `tenant`: commits on success."""
    async with runtime.transaction() as session:
        yield session
