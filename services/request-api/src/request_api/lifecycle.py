"""Pure rules of a request's status: which event moves it where, and never backwards."""

from __future__ import annotations

SUBMITTED = "submitted"
TERMINAL = frozenset({"completed", "rejected", "failed"})

_RANK = {"submitted": 0, "validated": 1, "allocated": 2, "configured": 3}


def may_move_from(new: str) -> frozenset[str]:
    """Every status a request may be in for `new` to replace it."""
    return frozenset(status for status in _RANK if may_move(status, new))


def may_move(current: str, new: str) -> bool:
    """Events of one request arrive on several topics, so a late one must not undo a newer
    status; a terminal status is final."""
    if current in TERMINAL:
        return False
    if new in TERMINAL:
        return True
    return _RANK[new] > _RANK[current]
