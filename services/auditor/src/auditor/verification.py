"""Verification of the whole record, as the service answers it: the keyed chain over every
record, then every checkpoint published outside the database against the records it seals.
The first problem in sequence order is located, whichever check found it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from auditor import chain, checkpoints, repository


async def verify_all(
    session: AsyncSession,
    *,
    chain_key: bytes,
    sealed: Sequence[checkpoints.Checkpoint],
    public_key: Ed25519PublicKey,
) -> dict[str, Any]:
    links = await _verify_links(session, chain_key)
    seals = await _verify_seals(session, sealed, public_key)
    answer: dict[str, Any] = {
        "ok": links.ok and seals.ok,
        "records": await repository.count_records(session),
        "checkpoints": seals.checked_checkpoints,
        "unsealed": seals.unsealed,
    }
    problems: list[tuple[int, str | None]] = []
    if not links.ok:
        problems.append((links.broken_at or 0, links.reason))
    if not seals.ok:
        seal_at = seals.broken_at_seq or 0
        # A root that does not match names a whole sealed range; when the chain names the
        # record inside it, that record is the better answer.
        sealing = next((c for c in sealed if c.first_seq == seal_at), None)
        inside = sealing is not None and sealing.first_seq <= (links.broken_at or 0) <= (
            sealing.last_seq
        )
        if not (not links.ok and inside):
            problems.append((seal_at, seals.reason))
    if problems:
        broken_at, reason = min(problems, key=lambda problem: problem[0])
        answer.update(broken_at_seq=broken_at, reason=reason)
    return answer


async def _verify_links(session: AsyncSession, chain_key: bytes) -> chain.Verdict:
    """The keyed chain, a page at a time, each page continuing the last."""
    checked, prev, previous_seq = 0, chain.GENESIS, None
    async for page in repository.chain_pages(session):
        verdict = chain.verify(page, chain_key, expected_prev=prev, previous_seq=previous_seq)
        checked += verdict.records
        if not verdict.ok:
            return replace(verdict, records=checked)
        prev, previous_seq = page[-1].hash, page[-1].seq
    return chain.Verdict(True, checked)


async def _verify_seals(
    session: AsyncSession,
    sealed: Sequence[checkpoints.Checkpoint],
    public_key: Ed25519PublicKey,
) -> checkpoints.Verdict:
    """Each published checkpoint against the records from the end of the one before it to
    its own end (so a gap or a missing checkpoint shows), then the records after the last
    one, which are not sealed yet: a window at a time, each no bigger than a checkpoint."""
    records = checkpoints_checked = unsealed = 0
    previous: checkpoints.Checkpoint | None = None
    for checkpoint in [*sealed, None]:
        first = previous.last_seq + 1 if previous is not None else 1
        last = checkpoint.last_seq if checkpoint is not None else 2**63 - 1
        window = await repository.records_between(session, first, last)
        if not window and checkpoint is not None:
            reason = (
                f"records {first}..{last} sealed by checkpoint "
                f"{checkpoint.first_seq}..{checkpoint.last_seq} are missing"
            )
            return checkpoints.Verdict(False, records, checkpoints_checked, first, reason)
        # With each record's links, a number a crash skipped in the unsealed tail (or in a
        # range whose checkpoint the file has not caught up with) is followed, not missing.
        rows = (
            {
                "seq": r.seq,
                "leaf": r.leaf,
                "content": repository.content_of(r),
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in window
        )
        verdict = checkpoints.verify_export(
            rows,
            [c for c in (previous, checkpoint) if c is not None],
            public_key,
        )
        session.expunge_all()
        records += verdict.checked_records
        # The checkpoint before the window is there for context (chaining), not counted.
        checkpoints_checked += verdict.checked_checkpoints
        unsealed += verdict.unsealed
        if not verdict.ok:
            return replace(
                verdict, checked_records=records, checked_checkpoints=checkpoints_checked
            )
        previous = checkpoint or previous
    return checkpoints.Verdict(True, records, checkpoints_checked, unsealed=unsealed)
