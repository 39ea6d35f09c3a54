"""The keyed hash chain, pure. Each record's leaf is the Merkle leaf hash of its canonical JSON
(RFC 8785); its link is an HMAC-SHA256, under a key kept outside the database, of the previous
link and its leaf. Editing, removing or reordering a record breaks every link after it, and
whoever can write the database but lacks the key cannot forge links that verify."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auditor import checkpoints

GENESIS = "0" * 64


def leaf_of(content: dict[str, Any]) -> str:
    return checkpoints.content_leaf(content).hex()


def link(key: bytes, prev_hash: str, leaf: str) -> str:
    return hmac.new(key, bytes.fromhex(prev_hash) + bytes.fromhex(leaf), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainedRecord:
    seq: int
    content: dict[str, Any]
    leaf: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    broken_at: int | None = None
    reason: str | None = None


def verify(
    records: Iterable[ChainedRecord],
    key: bytes,
    *,
    expected_prev: str = GENESIS,
    previous_seq: int | None = None,
) -> Verdict:
    """The first record whose link does not follow the one before it, whose content does not
    match its leaf, or whose link the key does not give. A run that continues an earlier one
    names where that one ended (`expected_prev`, `previous_seq`).

    A record's seq orders the chain; it is not part of it. The numbers may skip (after a
    database crash an identity column resumes up to 32 values on, and a rolled-back append
    leaves its numbers unused): where the next record links straight to the one before, no
    record is missing, and where it does not, the skipped numbers are named."""
    count = 0
    for record in records:
        if record.prev_hash != expected_prev:
            skipped = previous_seq is not None and record.seq > previous_seq + 1
            reason = (
                f"does not link to record {previous_seq}: "
                f"records {previous_seq + 1}..{record.seq - 1} are missing"
                if skipped and previous_seq is not None
                else "does not follow the previous record"
            )
            return Verdict(False, count, record.seq, reason)
        if leaf_of(record.content) != record.leaf:
            return Verdict(False, count, record.seq, "content does not match its leaf")
        if not hmac.compare_digest(link(key, record.prev_hash, record.leaf), record.hash):
            return Verdict(False, count, record.seq, "link does not verify under the chain key")
        expected_prev, previous_seq = record.hash, record.seq
        count += 1
    return Verdict(True, count)
