"""What a POST carrying an Idempotency-Key gets, decided from what was stored for the key."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_KEY_LENGTH = 255


class Outcome(enum.Enum):
    PROCEED = "proceed"  # first time (or the old record expired): do the work
    REPLAY = "replay"  # done before: the stored answer
    IN_PROGRESS = "in_progress"  # the first one is still running: 409
    MISMATCH = "mismatch"  # the key was used for another request: 422


@dataclass(frozen=True)
class KeyOf:
    """An Idempotency-Key as its caller sent it: the same key from two callers (keys or
    clients, by id) is two keys."""

    tenant: str
    caller: str
    key: str


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    state: str
    locked_at: datetime
    expires_at: datetime


def valid_key(key: str) -> bool:
    """1-255 visible ASCII characters (an opaque string, typically a UUID)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " < ch <= "~" for ch in key)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def decide(
    stored: Stored | None, fingerprint: str, *, now: datetime, lock_for: timedelta
) -> Outcome:
    if stored is None or stored.expires_at <= now:
        return Outcome.PROCEED
    if stored.fingerprint != fingerprint:
        return Outcome.MISMATCH
    if stored.state == "completed":
        return Outcome.REPLAY
    # A first attempt whose process died leaves its record in progress: after `lock_for` the
    # key may be tried again rather than being stuck for a day.
    if stored.locked_at + lock_for <= now:
        return Outcome.PROCEED
    return Outcome.IN_PROGRESS
