"""Pure rules of a request's status: which status may follow which, and never backwards.

submitted → (awaiting_approval) → validated → (backordered) → allocated → configured →
deployed → verified → completed, with the exits rejected, failed (nothing to undo),
cancelled, and compensating → rolled_back | compensation_failed | cancelled.
Events of one request arrive on several topics, so a late one must not undo a newer status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.contracts import requests

SUBMITTED = requests.SUBMITTED
FORWARD = requests.FORWARD_STATUSES
TERMINAL = requests.TERMINAL_STATUSES
UNDOING = requests.UNDOING
_ENDS_OF_UNDOING = requests.ENDS_OF_UNDOING
ALL = requests.ALL_STATUSES
CANCELLED = requests.CANCELLED
# Every status a request may still leave on its own.
IN_FLIGHT = (*FORWARD, UNDOING)


def may_move(current: str, new: str) -> bool:
    if current in TERMINAL or current == new:
        return False
    if current == UNDOING:
        return new in _ENDS_OF_UNDOING
    if new in FORWARD:
        return FORWARD.index(new) > FORWARD.index(current)
    return True


def may_move_from(new: str) -> frozenset[str]:
    """Every status a request may be in for `new` to replace it."""
    return frozenset(status for status in ALL if may_move(status, new))


@dataclass(frozen=True)
class Transition:
    """A status change as the database made it, with what its metrics need."""

    catalog_item: str
    operation: str
    old: str
    new: str
    submitted_at: datetime
    entered_old_at: datetime
    at: datetime

    @property
    def seconds_in_old(self) -> float:
        return max((self.at - self.entered_old_at).total_seconds(), 0.0)

    @property
    def seconds_since_submitted(self) -> float:
        return max((self.at - self.submitted_at).total_seconds(), 0.0)


def cancel_reason(by: str | None, at: datetime) -> dict[str, str | None]:
    """The reason a cancelled request carries: who cancelled it, and when."""
    who = by or "the platform"
    return {
        "step": "cancel",
        "code": "cancelled",
        "message": f"cancelled by {who} at {at.isoformat()}",
        "by": who,
        "at": at.isoformat(),
    }
