"""The deployer's target drivers, one per kind of target system, and how they are chosen:
by the configuration's driver name and the server (target) the allocator placed it on."""

from __future__ import annotations

from deployer.drivers.base import (
    Deployed,
    Driver,
    Placement,
    TargetConflict,
    TargetUnavailable,
    marker,
)
from events import PermanentError

__all__ = [
    "Deployed",
    "Driver",
    "Drivers",
    "Placement",
    "TargetConflict",
    "TargetUnavailable",
    "marker",
]


class Drivers:
    def __init__(self, by_target: dict[tuple[str, str], Driver]) -> None:
        self._by_target = by_target

    def get(self, driver: str, server_id: str) -> Driver:
        found = self._by_target.get((driver, server_id))
        if found is None:
            raise PermanentError(f"the deployer has no {driver!r} driver for {server_id!r}")
        return found

    async def close(self) -> None:
        # One driver object may serve several targets (the PostgreSQL servers of a pool).
        for driver in {id(d): d for d in self._by_target.values()}.values():
            await driver.close()
