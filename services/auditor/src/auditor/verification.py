"""Verification of the whole record, as the service answers it: the keyed chain over every
record, then every checkpoint published outside the database against the records it seals.
The first problem in sequence order is located, whichever check found it."""

from __future__ import annotations

from collections.abc import Sequence
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
    records = [record async for record in repository.chain(session)]
    links = chain.verify(records, chain_key)
    seals = checkpoints.verify_export(
        ({"seq": r.seq, "leaf": r.leaf, "content": r.content} for r in records),
        sealed,
        public_key,
    )
    answer: dict[str, Any] = {
        "ok": links.ok and seals.ok,
        "records": len(records),
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
