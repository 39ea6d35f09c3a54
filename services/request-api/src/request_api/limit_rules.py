"""Pure rules of the API's limits: how long to wait, and what a call would add in flight."""

from __future__ import annotations

import math
from typing import Any

from limits import RateLimitItem, parse_many
from pydantic import TypeAdapter, ValidationError

# The routes that file new requests; a deprovision or modify gives back or changes what is
# held, so it is never held back by the cap.
SUBMIT_REQUEST = "/v1/requests"
SUBMIT_BUNDLE = "/v1/bundles"


def parse_rate_limit(text: str) -> RateLimitItem:
    """One limit in the `limits` notation ("5/second", "100 per minute"), at least 1 call;
    ValueError otherwise."""
    items = parse_many(text)
    if len(items) != 1:
        raise ValueError("give exactly one limit, such as 5/second")
    if items[0].amount < 1:
        raise ValueError("a limit allows at least one call")
    return items[0]


def retry_after_s(reset_time: float, now: float) -> int:
    """Whole seconds until a call may succeed again; never 0, which would invite a hot loop."""
    return max(1, math.ceil(reset_time - now))


def requests_added(method: str, path: str, dry_run: str | None, body: Any) -> int:
    """How many requests a call would add to its tenant's in-flight ones."""
    if method != "POST":
        return 0
    if path == SUBMIT_REQUEST:
        return 0 if _is_true(dry_run) else 1
    if path == SUBMIT_BUNDLE:
        items = body.get("items") if isinstance(body, dict) else None
        # A malformed bundle is refused by validation; count it as one so the cap still holds.
        return len(items) if isinstance(items, list) and items else 1
    return 0


def exceeds_in_flight(in_flight: int, adding: int, cap: int) -> bool:
    return adding > 0 and in_flight + adding > cap


def _is_true(query_value: str | None) -> bool:
    """The query parameter read as FastAPI reads a bool; anything unreadable adds nothing
    here, since the route itself refuses it with 422."""
    if query_value is None:
        return False
    try:
        return TypeAdapter(bool).validate_python(query_value)
    except ValidationError:
        return True
