"""Waiting in tests for what the system does asynchronously."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: str = "",
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail after
    `timeout_s`, naming `what` was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what or check}")
        await asyncio.sleep(interval_s)
