"""The approval clock, run periodically: escalates and auto-denies stages left undecided."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from events import ServiceRuntime
from request_api.approvals import workflow


async def tick(runtime: ServiceRuntime, session: AsyncSession) -> None:
    await workflow.tick(session, partial(runtime.publish, session))
