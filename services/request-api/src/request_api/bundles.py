"""Pure roll-up of a bundle's status from its items' statuses."""

from __future__ import annotations

from collections.abc import Sequence

from events.contracts.lifecycle import TERMINAL, UNSUCCESSFUL


def roll_up(statuses: Sequence[str], *, all_or_nothing: bool, live_resources: int) -> str:
    """`live_resources`: items completed whose resource still exists."""
    if any(status not in TERMINAL for status in statuses):
        return "in_progress"
    completed = sum(status == "completed" for status in statuses)
    if completed == len(statuses):
        return "completed"
    if all_or_nothing:
        return "rolling_back" if live_resources else "rolled_back"
    return "partially_completed" if completed else "failed"


def must_undo(statuses: Sequence[str], *, all_or_nothing: bool) -> bool:
    return all_or_nothing and any(status in UNSUCCESSFUL for status in statuses)
