"""The unsigned `/_test/...` routes: every delivery the receiver has logged, and faults that
make a system fail or hang."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devstack.receiver.signing import System
from devstack.receiver.state import State


class Fault(BaseModel):
    """Answer the next `count` calls to `system` (of `method`, if given) with `status`, or
    hold them for `delay_s` before answering normally."""

    model_config = ConfigDict(extra="forbid")

    system: System
    status: int | None = Field(default=None, ge=400, le=599)
    delay_s: float | None = Field(default=None, gt=0, le=300)
    count: int = Field(default=1, ge=1)
    method: Literal["GET", "POST"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Fault:
        if (self.status is None) == (self.delay_s is None):
            raise ValueError("give either status or delay_s")
        return self


def take_fault(faults: list[Fault], system: str, method: str) -> Fault | None:
    """The first pending fault for this call, counted down (and dropped at zero)."""
    for fault in faults:
        if fault.system == system and fault.method in (None, method):
            fault.count -= 1
            if fault.count == 0:
                faults.remove(fault)
            return fault
    return None


def router(faults: list[Fault], state: State) -> APIRouter:
    routes = APIRouter()

    @routes.get("/_test/deliveries")
    async def deliveries() -> list[dict[str, Any]]:
        return state.deliveries

    @routes.post("/_test/faults")
    async def add_fault(fault: Fault) -> dict[str, int]:
        faults.append(fault)
        return {"pending": len(faults)}

    @routes.delete("/_test/faults")
    async def clear_faults() -> dict[str, int]:
        faults.clear()
        return {"pending": 0}

    return routes
