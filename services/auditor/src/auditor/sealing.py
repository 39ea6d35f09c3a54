"""Checkpoints: every so many records or seconds, the records since the last checkpoint are
sealed by an Ed25519-signed Merkle root. The checkpoint is kept in the audit database and,
so that rewriting the database is not enough, published outside it: to the
`audit.checkpoints` Kafka topic (through the outbox, in the sealing transaction) and to a
file (appended at the next round, once the transaction that made it has committed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from auditor import checkpoints, merkle, repository
from auditor.models import Checkpoint
from events.outbox import stage_raw
from events.topics import AUDIT_CHECKPOINTS

# One sealer at a time across replicas; the others skip the round.
SEAL_LOCK = 0x5EA1_0C4C


@dataclass(frozen=True)
class SealPolicy:
    every_records: int
    every: timedelta


@dataclass(frozen=True)
class Sealer:
    private_key: Ed25519PrivateKey
    checkpoint_file: Path
    policy: SealPolicy

    @property
    def key_id(self) -> str:
        return checkpoints.key_id_of(self.private_key.public_key())

    async def round(self, session: AsyncSession) -> None:
        """One round of the periodic job: publish what earlier rounds sealed to the file,
        then seal what is due."""
        locked = await session.scalar(text(f"SELECT pg_try_advisory_xact_lock({SEAL_LOCK})"))
        if not locked:
            return
        await self._append_to_file(session)
        await self._seal_if_due(session)

    async def _seal_if_due(self, session: AsyncSession) -> None:
        last = await repository.last_checkpoint(session)
        after = last.last_seq if last else 0
        oldest = await repository.oldest_recorded_after(session, after)
        if oldest is None:
            return
        leaves = await repository.leaves_after(session, after, limit=self.policy.every_records)
        now = datetime.now(UTC)
        if len(leaves) < self.policy.every_records and now - oldest < self.policy.every:
            return
        unsigned = checkpoints.Checkpoint(
            first_seq=leaves[0][0],
            last_seq=leaves[-1][0],
            size=len(leaves),
            root=merkle.root([bytes.fromhex(leaf) for _, leaf in leaves]).hex(),
            prev_root=last.root if last else checkpoints.NO_PREVIOUS_ROOT,
            created_at=now.isoformat(),
            key_id=self.key_id,
            signature="",
        )
        signed = checkpoints.sign(unsigned, self.private_key)
        session.add(Checkpoint(**signed.to_dict()))
        stage_raw(
            session,
            topic=AUDIT_CHECKPOINTS,
            key=b"checkpoints",
            value=rfc8785.dumps(signed.to_dict()),
            headers=[],
        )

    async def _append_to_file(self, session: AsyncSession) -> None:
        written = last_seq_in_file(self.checkpoint_file)
        missing = await repository.checkpoints_after(session, written)
        if not missing:
            return
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        with self.checkpoint_file.open("a") as out:
            for row in missing:
                out.write(json.dumps(checkpoint_of(row).to_dict()) + "\n")


def checkpoint_of(row: Checkpoint) -> checkpoints.Checkpoint:
    return checkpoints.Checkpoint(
        first_seq=row.first_seq,
        last_seq=row.last_seq,
        size=row.size,
        root=row.root,
        prev_root=row.prev_root,
        created_at=row.created_at,
        key_id=row.key_id,
        signature=row.signature,
    )


def read_file(path: Path) -> list[checkpoints.Checkpoint]:
    if not path.exists():
        return []
    return [
        checkpoints.Checkpoint.from_dict(json.loads(line))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def last_seq_in_file(path: Path) -> int:
    """The last checkpoint's `last_seq`, from the file's tail (a line is well under 4 KiB)."""
    if not path.exists():
        return 0
    with path.open("rb") as source:
        source.seek(max(0, path.stat().st_size - 4096))
        lines = [line for line in source.read().splitlines() if line.strip()]
    return int(json.loads(lines[-1])["last_seq"]) if lines else 0
