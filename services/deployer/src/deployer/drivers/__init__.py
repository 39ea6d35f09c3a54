"""The deployer's target drivers, one per kind of target system, and how they are chosen:
by the configuration's driver name and the server (target) the allocator placed it on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from opentelemetry import trace

from deployer.drivers.base import (
    Deployed,
    Driver,
    Placement,
    TargetConflict,
    TargetUnavailable,
    marker,
)
from events import PermanentError

T = TypeVar("T")

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
    def __init__(
        self, by_target: dict[tuple[str, str], Driver], tracer: trace.Tracer | None = None
    ) -> None:
        self._by_target = by_target
        self._tracer = tracer or trace.NoOpTracer()

    def get(self, driver: str, server_id: str) -> Driver:
        """The driver for this target; each of its calls is a span (`postgres apply`)."""
        found = self._by_target.get((driver, server_id))
        if found is None:
            raise PermanentError(f"the deployer has no {driver!r} driver for {server_id!r}")
        return TracedDriver(found, name=driver, server_id=server_id, tracer=self._tracer)

    async def close(self) -> None:
        # One driver object may serve several targets (the PostgreSQL servers of a pool).
        for driver in {id(d): d for d in self._by_target.values()}.values():
            await driver.close()


class TracedDriver:
    """A driver whose every call is a span named after the driver and the call, so a trace
    shows the time spent in each target, wherever the call is made (handlers, upkeep)."""

    def __init__(self, driver: Driver, *, name: str, server_id: str, tracer: trace.Tracer) -> None:
        self._driver = driver
        self._name = name
        self._server_id = server_id
        self._tracer = tracer
        self.needs_secret = driver.needs_secret

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        return await self._traced("apply", placement, self._driver.apply, configuration, secret)

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        return await self._traced("verify", placement, self._driver.verify, configuration, secret)

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._traced("disable", placement, self._driver.disable, configuration)

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        await self._traced("remove", placement, self._driver.remove, configuration)

    async def close(self) -> None:
        await self._driver.close()

    async def _traced(
        self,
        operation: str,
        placement: Placement,
        call: Callable[..., Awaitable[T]],
        *args: Any,
    ) -> T:
        # No request.id: a drift check's call is not part of the creating request's trace.
        attributes = {
            "deployer.driver": self._name,
            "deployer.operation": operation,
            "deployer.server_id": self._server_id,
            "resource.id": str(placement.resource_id),
        }
        with self._tracer.start_as_current_span(f"{self._name} {operation}", attributes=attributes):
            return await call(placement, *args)
