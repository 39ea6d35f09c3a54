"""The journal's event types a subscription may choose, and how its patterns match them."""

from __future__ import annotations

from fnmatch import fnmatchcase

from events.contracts import lifecycle
from events.contracts.requests import RequestStatus

RESOURCE_STATES = ("active", "retiring", "retired")
KNOWN = frozenset(
    {f"request.{status}" for status in RequestStatus}
    | {f"resource.{state}" for state in RESOURCE_STATES}
    | {"request.reasons_added", "resource.drift_detected", "resource.drift_resolved"}
)
TERMINAL = frozenset(f"request.{status}" for status in lifecycle.TERMINAL)


def matches(patterns: list[str], event_type: str) -> bool:
    """`request.completed`, `request.*` and `*` all match `request.completed`."""
    return any(fnmatchcase(event_type, pattern) for pattern in patterns)


def unknown_patterns(patterns: list[str]) -> list[str]:
    """Patterns that match no known event type (a typo would otherwise wait in silence)."""
    return [pattern for pattern in patterns if not any(matches([pattern], t) for t in KNOWN)]
