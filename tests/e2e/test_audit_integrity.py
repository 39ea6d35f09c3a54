"""The audit record is tamper-evident: an attacker with the database superuser's powers edits
a record, edits it and recomputes its leaf, deletes the last records, swaps two, or rebuilds
the whole chain (with another key, or even with the chain key itself), and each time the
service's verification finds it and says where; the offline verifier, given only the export,
the published checkpoints and the public key, agrees. Tampering happens on a copy of the
audit database, so the live record that the other tests check stays whole."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from tests.e2e.client import Platform, fetchval

from auditor import chain, checkpoints, merkle, sealing, verification
from auditor.models import AuditRecord
from auditor.repository import content_of
from devstack import postgres
from devstack.stack import Stack
from events.sealing import read_key

pytestmark = pytest.mark.integration

Tamper = Callable[[asyncpg.Connection, int], Awaitable[None]]


async def sealed_record(platform: Platform) -> dict[str, Any]:
    """Once a few requests are recorded and every record is sealed: the service's verdict."""
    for _ in range(3):
        await platform.completed("postgres_schema", name=f"audit_{uuid.uuid4().hex[:10]}")
    for _ in range(100):
        verdict = (await platform.audit.get("/v1/audit/verify")).json()
        if verdict["unsealed"] == 0 and verdict["checkpoints"] >= 1:
            assert verdict["ok"] is True, verdict
            return dict(verdict)
        await asyncio.sleep(0.3)
    raise AssertionError(f"records still unsealed: {verdict}")


def copy_database(stack: Stack, name: str) -> None:
    config = stack.config
    common = ["-h", str(config.pg_socket_dir), "-p", str(config.pg_port), "-U", "postgres"]
    psql = str(postgres.bin_dir() / "psql")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, psql, *common, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
        cwd="/tmp",
        check=True,
        capture_output=True,
    )
    dump = subprocess.run(
        [*as_postgres, str(postgres.bin_dir() / "pg_dump"), *common, "-d", "auditor"],
        cwd="/tmp",
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(
        [*as_postgres, psql, *common, "-d", name, "-q", "-v", "ON_ERROR_STOP=1"],
        input=dump,
        cwd="/tmp",
        check=True,
        capture_output=True,
    )


@pytest.fixture
async def public_key(platform: Platform) -> Ed25519PublicKey:
    pem = (await platform.audit.get("/v1/audit/public-key")).text
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    return key


class Copy:
    """A copy of the audit database at a moment when all of it was sealed, with the
    checkpoints published up to then."""

    def __init__(self, stack: Stack, name: str, sealed: list[checkpoints.Checkpoint]) -> None:
        self.stack, self.name, self.sealed = stack, name, sealed

    async def tamper(self, change: Tamper, seq: int) -> None:
        connection = await asyncpg.connect(self.stack.database_dsn("postgres"), database=self.name)
        try:
            # What an attacker with the superuser does first: the append-only triggers off.
            await connection.execute("SET session_replication_role = replica")
            await change(connection, seq)
        finally:
            await connection.close()

    async def service_verdict(self, public_key: Ed25519PublicKey) -> dict[str, Any]:
        engine = create_async_engine(_url_for(self.stack, self.name))
        try:
            async with AsyncSession(engine) as session:
                return await verification.verify_all(
                    session,
                    chain_key=read_key(self.stack.config.audit_chain_key_file),
                    sealed=self.sealed,
                    public_key=public_key,
                )
        finally:
            await engine.dispose()

    async def export(self) -> list[dict[str, Any]]:
        engine = create_async_engine(_url_for(self.stack, self.name))
        try:
            async with AsyncSession(engine) as session:
                rows = (await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))).all()
                return [
                    {
                        "seq": r.seq,
                        "leaf": r.leaf,
                        "content": content_of(r),
                        "prev_hash": r.prev_hash,
                        "hash": r.hash,
                    }
                    for r in rows
                ]
        finally:
            await engine.dispose()


def _url_for(stack: Stack, database: str) -> str:
    url = stack.database_url("auditor")
    return url.replace("/auditor?", f"/{database}?")


@pytest.fixture
async def copies(platform: Platform) -> AsyncIterator[Callable[[], Awaitable[Copy]]]:
    stack = platform.stack
    await sealed_record(platform)
    made: list[str] = []

    async def make() -> Copy:
        name = f"audit_copy_{uuid.uuid4().hex[:8]}"
        copy_database(stack, name)
        made.append(name)
        tail = await _tail(stack, name)
        published = sealing.read_file(stack.config.audit_checkpoint_file)
        copy = Copy(stack, name, [c for c in published if c.last_seq <= tail])
        assert copy.sealed and copy.sealed[-1].last_seq == tail, "the copy is not all sealed"
        return copy

    yield make
    admin = await asyncpg.connect(stack.database_dsn("postgres"))
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tail(stack: Stack, name: str) -> int:
    connection = await asyncpg.connect(stack.database_dsn("postgres"), database=name)
    try:
        return int(await connection.fetchval("SELECT max(seq) FROM audit_records"))
    finally:
        await connection.close()


# The attacks -------------------------------------------------------------------------------


async def edit(connection: asyncpg.Connection, seq: int) -> None:
    await connection.execute(
        "UPDATE audit_records SET reason = 'nothing to see here' WHERE seq = $1", seq
    )


async def edit_and_recompute_the_leaf(connection: asyncpg.Connection, seq: int) -> None:
    await edit(connection, seq)
    await _rehash(connection, seq, seq, key=None)


async def delete_the_last_three(connection: asyncpg.Connection, seq: int) -> None:
    await connection.execute("DELETE FROM audit_records WHERE seq >= $1", seq)


async def swap_with_the_next(connection: asyncpg.Connection, seq: int) -> None:
    rows = await connection.fetch(
        "SELECT * FROM audit_records WHERE seq IN ($1, $2) ORDER BY seq", seq, seq + 1
    )
    await connection.execute("DELETE FROM audit_records WHERE seq IN ($1, $2)", seq, seq + 1)
    for row, new_seq in zip(rows, (seq + 1, seq), strict=True):
        values = dict(row) | {"seq": new_seq}
        columns = ", ".join(values)
        placeholders = ", ".join(f"${n}" for n in range(1, len(values) + 1))
        await connection.execute(
            f"INSERT INTO audit_records ({columns}) OVERRIDING SYSTEM VALUE "
            f"VALUES ({placeholders})",
            *values.values(),
        )


async def rebuild_with_another_key(connection: asyncpg.Connection, seq: int) -> None:
    await edit(connection, seq)
    await _rehash(connection, 1, None, key=bytes(32))


async def rebuild_with_the_chain_key(connection: asyncpg.Connection, seq: int) -> None:
    """An insider who also stole the chain key: only the signed checkpoints stand."""
    await edit(connection, seq)
    await _rehash(connection, 1, None, key=CHAIN_KEY["key"])


CHAIN_KEY: dict[str, bytes] = {}


async def _rehash(
    connection: asyncpg.Connection, first: int, last: int | None, *, key: bytes | None
) -> None:
    """Recompute leaves (and, with a key, the links) from `first` on, as an attacker would."""
    rows = await connection.fetch(
        "SELECT * FROM audit_records WHERE seq >= $1 AND ($2::bigint IS NULL OR seq <= $2) "
        "ORDER BY seq",
        first,
        last,
    )
    prev: str | None = None
    for row in rows:
        # asyncpg hands JSONB over as text; the record's content holds it as JSON.
        record = AuditRecord(**(dict(row) | {"envelope": json.loads(row["envelope"])}))
        leaf = chain.leaf_of(content_of(record))
        prev_hash = prev or row["prev_hash"]
        digest = chain.link(key, prev_hash, leaf) if key is not None else row["hash"]
        await connection.execute(
            "UPDATE audit_records SET leaf = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
            row["seq"],
            leaf,
            prev_hash,
            digest,
        )
        prev = digest if key is not None else None


@pytest.mark.parametrize(
    ("attack", "where", "offline_exact"),
    [
        (edit, "middle", True),
        (edit_and_recompute_the_leaf, "middle", False),
        (delete_the_last_three, "tail", True),
        # Offline, a swap that moves leaves with contents shows as its range's root.
        (swap_with_the_next, "middle", False),
        (rebuild_with_another_key, "middle", False),
        (rebuild_with_the_chain_key, "middle", False),
    ],
)
async def test_tampering_is_detected_and_located(
    platform: Platform,
    copies: Callable[[], Awaitable[Copy]],
    public_key: Ed25519PublicKey,
    attack: Tamper,
    where: str,
    offline_exact: bool,
):
    CHAIN_KEY["key"] = read_key(platform.stack.config.audit_chain_key_file)
    copy = await copies()
    untouched = await copy.service_verdict(public_key)
    assert untouched["ok"] is True, untouched
    tail = untouched["records"]
    seq = tail - 2 if where == "tail" else tail // 2
    await copy.tamper(attack, seq)

    verdict = await copy.service_verdict(public_key)
    assert verdict["ok"] is False, verdict
    sealing_range = next(c for c in copy.sealed if c.first_seq <= seq <= c.last_seq)
    if attack is rebuild_with_another_key:
        assert verdict["broken_at_seq"] == 1, verdict  # no link verifies under the real key
    elif attack is rebuild_with_the_chain_key:
        # The chain is consistent again: the signed root of the edited record's range is not.
        assert verdict["broken_at_seq"] == sealing_range.first_seq, (verdict, copy.sealed)
    else:
        assert verdict["broken_at_seq"] == seq, verdict

    offline = checkpoints.verify_export(await copy.export(), copy.sealed, public_key)
    assert offline.ok is False
    assert offline.broken_at_seq is not None
    if offline_exact:
        assert offline.broken_at_seq == seq, offline
    else:
        assert sealing_range.first_seq <= offline.broken_at_seq <= seq, offline


def offline_verifier(records: Path, sealed: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """The command-line verifier, as an external auditor runs it."""
    command = [sys.executable, "-m", "auditor.offline", "--records", str(records)]
    command += ["--checkpoints", str(sealed), "--public-key", str(key)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


async def test_the_service_and_the_offline_verifier_agree_on_the_live_record(
    platform: Platform, public_key: Ed25519PublicKey, tmp_path: Path
):
    verdict = await sealed_record(platform)
    records = verdict["records"]
    export = (await platform.audit.get("/v1/audit/export", params={"first": 1})).json()
    assert len(export["records"]) >= records
    (tmp_path / "export.json").write_text(json.dumps(export))
    (tmp_path / "checkpoints.json").write_text(
        (await platform.audit.get("/v1/audit/checkpoints")).text
    )
    (tmp_path / "key.pem").write_text((await platform.audit.get("/v1/audit/public-key")).text)
    done = offline_verifier(
        tmp_path / "export.json", tmp_path / "checkpoints.json", tmp_path / "key.pem"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


async def test_a_records_inclusion_proof_checks_out_offline(
    platform: Platform, public_key: Ed25519PublicKey
):
    request = await platform.completed("postgres_schema", name=f"proof_{uuid.uuid4().hex[:10]}")
    history = (await platform.audit.get(f"/v1/audit/requests/{request['id']}")).json()
    seq = history["events"][-1]["seq"]
    for _ in range(100):
        answer = await platform.audit.get(f"/v1/audit/records/{seq}/proof")
        if answer.status_code == 200:
            break
        assert answer.status_code == 409, answer.text  # not sealed yet
        await asyncio.sleep(0.3)
    proof = answer.json()
    sealed = checkpoints.Checkpoint.from_dict(proof["checkpoint"])
    assert checkpoints.verify_signature(sealed, public_key)
    leaf = checkpoints.content_leaf(proof["content"])
    assert leaf.hex() == proof["leaf"]
    assert merkle.verify_inclusion(
        leaf,
        proof["index"],
        sealed.size,
        [bytes.fromhex(node) for node in proof["proof"]],
        bytes.fromhex(sealed.root),
    )
    # A record changed by one character no longer proves.
    proof["content"]["reason"] = "edited"
    edited = checkpoints.content_leaf(proof["content"])
    assert not merkle.verify_inclusion(
        edited,
        proof["index"],
        sealed.size,
        [bytes.fromhex(node) for node in proof["proof"]],
        bytes.fromhex(sealed.root),
    )


async def test_numbers_a_crash_skipped_are_no_tampering(
    platform: Platform, public_key: Ed25519PublicKey
):
    """After a crash PostgreSQL resumes an identity column past the values it had logged
    ahead (up to 32): the chain's numbers skip, its links do not."""
    await sealed_record(platform)
    owner = await asyncpg.connect(platform.stack.database_dsn("auditor"))
    try:
        before = await owner.fetchval("SELECT max(seq) FROM audit_records")
        await owner.execute(
            "SELECT setval(pg_get_serial_sequence('audit_records', 'seq'),"
            " (SELECT max(seq) FROM audit_records) + 32)"
        )
        verdict = await sealed_record(platform)  # three more requests, all sealed: ok
        after_gap = await owner.fetchval(
            "SELECT min(seq) FROM audit_records WHERE seq > $1 + 1", before
        )
        skipped = await owner.fetchval(
            "SELECT count(*) FROM generate_series($1::bigint, $2::bigint) AS n"
            " WHERE NOT EXISTS (SELECT 1 FROM audit_records WHERE seq = n)",
            before,
            after_gap,
        )
    finally:
        await owner.close()
    assert skipped >= 30, (before, after_gap)  # a real hole: other appends may fill the edge
    assert verdict["ok"] is True, verdict

    # The offline verifier agrees, from the checkpoint sealing the last record before the gap.
    published = [
        checkpoints.Checkpoint.from_dict(item)
        for item in (await platform.audit.get("/v1/audit/checkpoints")).json()["items"]
    ]
    start = next(c for c in published if c.last_seq >= before)
    export = await platform.audit.get("/v1/audit/export", params={"first": start.first_seq})
    records = export.json()["records"]
    assert any(r["seq"] == after_gap for r in records)
    offline = checkpoints.verify_export(records, published, public_key)
    assert offline.ok, offline

    # A record sealed after the gap proves its place in its checkpoint's tree.
    proof = (await platform.audit.get(f"/v1/audit/records/{after_gap}/proof")).json()
    sealed = checkpoints.Checkpoint.from_dict(proof["checkpoint"])
    assert merkle.verify_inclusion(
        checkpoints.content_leaf(proof["content"]),
        proof["index"],
        sealed.size,
        [bytes.fromhex(node) for node in proof["proof"]],
        bytes.fromhex(sealed.root),
    )

    # Before the checkpoint over the gap is published (the file follows the database by a
    # round), the gap sits among unsealed records: the service follows their links there too.
    name = f"audit_copy_{uuid.uuid4().hex[:8]}"
    copy_database(platform.stack, name)
    try:
        copy = Copy(platform.stack, name, [c for c in published if c.last_seq < before])
        unsealed = await copy.service_verdict(public_key)
    finally:
        await fetchval(platform.stack, "postgres", f'DROP DATABASE "{name}" WITH (FORCE)')
    assert unsealed["ok"] is True, unsealed
    assert unsealed["unsealed"] > 0, unsealed


async def test_the_auditors_login_may_only_read_and_append(platform: Platform):
    await platform.completed("postgres_schema", name=f"audit_{uuid.uuid4().hex[:10]}")
    auditor = await asyncpg.connect(platform.stack.database_dsn("auditor"), user="auditor")
    try:
        assert await auditor.fetchval("SELECT count(*) FROM audit_records") > 0
        for statement in (
            "UPDATE audit_records SET reason = 'edited'",
            "DELETE FROM audit_records",
            "TRUNCATE audit_records",
            "UPDATE audit_checkpoints SET root = ''",
            "DELETE FROM audit_checkpoints",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await auditor.execute(statement)
    finally:
        await auditor.close()
    # Everyone else short of a superuser turning the triggers off is refused by them.
    owner = await asyncpg.connect(platform.stack.database_dsn("auditor"))
    try:
        for statement in (
            "UPDATE audit_records SET reason = 'edited'",
            "DELETE FROM audit_records",
            "TRUNCATE audit_records",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await owner.execute(statement)
    finally:
        await owner.close()
