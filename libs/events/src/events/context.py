"""What a handler gets besides its event: the transaction's session, its service's
dependencies, and a way to emit events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from events.envelope import Envelope, Event

D = TypeVar("D")


@dataclass
class HandlerContext(Generic[D]):
    session: AsyncSession
    envelope: Envelope
    deps: D
    emitted: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        """Publish `event` if, and only if, this handler's transaction commits."""
        self.emitted.append(event)
