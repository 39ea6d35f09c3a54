"""Pure rules of a request's status: which status may follow which, and never backwards.

submitted → (awaiting_approval) → validated → (backordered) → allocated → configured →
deployed → verified → completed, with the exits rejected, failed (nothing to undo),
cancelled, and compensating → rolled_back | compensation_failed | cancelled.
Events of one request arrive on several topics, so a late one must not undo a newer status.
"""

from __future__ import annotations

SUBMITTED = "submitted"
FORWARD = (
    "submitted",
    "awaiting_approval",
    "validated",
    "backordered",
    "allocated",
    "configured",
    "deployed",
    "verified",
)
TERMINAL = frozenset(
    {"completed", "rejected", "failed", "rolled_back", "compensation_failed", "cancelled"}
)
UNDOING = "compensating"
_ENDS_OF_UNDOING = frozenset({"rolled_back", "compensation_failed", "cancelled"})

ALL = (*FORWARD, UNDOING, *sorted(TERMINAL))


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
