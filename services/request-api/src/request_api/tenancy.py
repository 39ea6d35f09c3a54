"""Every API transaction runs inside the caller's tenant: the queries name the tenant, and
PostgreSQL's row-level security (`events.tenancy`) refuses any row of another tenant even if
a query forgets to."""

from __future__ import annotations

import contextlib

from sqlalchemy.ext.asyncio import AsyncSession

from events import ServiceRuntime


def tenant_transaction(
    runtime: ServiceRuntime, tenant: str
) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
    """A unit of work for an API route acting for `tenant`: commits on success."""
    return runtime.tenant_transaction(tenant)
