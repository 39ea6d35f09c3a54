"""Wakes the streams of a request when its journal grows: one LISTEN connection per process
for every stream, opened with the first stream and kept until the service stops.

Streams still re-read the journal every few seconds without a wake-up, so a notification lost
while the connection was being re-opened delays an event, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from events.errors import describe
from request_api.webhooks.journal import CHANNEL

log = logging.getLogger(__name__)

RECONNECT_AFTER_S = 1.0
CHECK_EVERY_S = 10.0


class ActivitySignal:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watch(self, request_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `request_id`'s journal may have grown. Watch before reading
        the journal, so that nothing committed in between goes unnoticed."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="activity-listener")
        woken = asyncio.Event()
        self._watchers[request_id].add(woken)
        try:
            yield woken
        finally:
            self._watchers[request_id].discard(woken)
            if not self._watchers[request_id]:
                del self._watchers[request_id]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        for woken in self._watchers.get(payload, ()):
            woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._engine.connect() as connection:
                    raw = (await connection.get_raw_connection()).driver_connection
                    assert raw is not None
                    await raw.add_listener(CHANNEL, self._on_notify)
                    try:
                        while True:
                            await asyncio.sleep(CHECK_EVERY_S)
                            await raw.execute("SELECT 1")  # notices a dropped connection
                    finally:
                        with contextlib.suppress(Exception):
                            await raw.remove_listener(CHANNEL, self._on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("activity listener lost its connection: %s", describe(error))
            self._wake_everyone()
            await asyncio.sleep(RECONNECT_AFTER_S)

    def _wake_everyone(self) -> None:
        for watchers in self._watchers.values():
            for woken in watchers:
                woken.set()
