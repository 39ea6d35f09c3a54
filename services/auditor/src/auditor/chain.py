"""The hash chain, pure: each record's hash covers its canonical JSON (RFC 8785) and the
previous record's hash, so editing, removing or reordering a record breaks every hash after it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rfc8785

GENESIS = "0" * 64


def record_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + rfc8785.dumps(content)).hexdigest()


@dataclass(frozen=True)
class ChainedRecord:
    seq: int
    content: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    broken_at: int | None = None
    reason: str | None = None


def verify(records: Iterable[ChainedRecord], *, expected_prev: str = GENESIS) -> Verdict:
    count = 0
    for record in records:
        if record.prev_hash != expected_prev:
            return Verdict(False, count, record.seq, "does not follow the previous record")
        if record_hash(record.prev_hash, record.content) != record.hash:
            return Verdict(False, count, record.seq, "content does not match its hash")
        expected_prev = record.hash
        count += 1
    return Verdict(True, count)
