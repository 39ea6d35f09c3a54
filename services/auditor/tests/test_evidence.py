import io
import json
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor import chain, evidence, merkle, offline, repository
from auditor.checkpoints import NO_PREVIOUS_ROOT, Checkpoint, sign
from auditor.evidence import (
    CHECKPOINTS,
    PROOFS,
    PUBLIC_KEY,
    RECORDS,
    REPORT_HTML,
    REPORT_JSON,
    build_pack,
    proof_in,
    public_key_pem,
    verify_pack,
)
from auditor.models import AuditRecord

KEY = Ed25519PrivateKey.generate()
REQUEST_ID = str(uuid.uuid4())
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Records 1..14: the request's are 3, 5, 6 (first checkpoint, 1..6) and 9, 12 (second, 7..14).
OURS = (3, 5, 6, 9, 12)
RANGES = ((1, 6), (7, 14))
TYPES = ("request.submitted", "request.validated", "resource.allocated")


def record(seq: int) -> AuditRecord:
    ours = seq in OURS
    subject = REQUEST_ID if ours else str(uuid.uuid4())
    kind = TYPES[seq % len(TYPES)]
    row = AuditRecord(
        seq=seq,
        event_id=uuid.uuid4(),
        event_type=kind,
        source="test",
        subject=subject,
        tenant="acme",
        occurred_at=T0 + timedelta(seconds=seq),
        recorded_at=T0 + timedelta(seconds=seq, milliseconds=5),
        trace_id=None,
        service="test",
        actor="<script>rita</script>" if seq == 3 else "validator",
        on_behalf_of=None,
        request_id=subject,
        resource_id=None,
        step="submission",
        outcome="requested",
        reason=None,
        before=None,
        after="submitted",
        envelope={"type": kind, "data": {"catalog_item": "postgres_schema", "requester": "r"}},
    )
    row.leaf = chain.leaf_of(repository.content_of(row))
    return row


ALL = [record(seq) for seq in range(1, 15)]


def sealed(first: int, last: int, key: Ed25519PrivateKey = KEY) -> Checkpoint:
    leaves = [bytes.fromhex(r.leaf) for r in ALL[first - 1 : last]]
    return sign(
        Checkpoint(
            first_seq=first,
            last_seq=last,
            size=last - first + 1,
            root=merkle.root(leaves).hex(),
            prev_root=NO_PREVIOUS_ROOT,
            created_at=T0.isoformat(),
            key_id="",
        ),
        key,
    )


def pack(key: Ed25519PrivateKey = KEY) -> bytes:
    records = [r for r in ALL if r.seq in OURS]
    proofs = {}
    for first, last in RANGES:
        checkpoint = sealed(first, last, key)
        leaves = [(r.seq, r.leaf) for r in ALL[first - 1 : last]]
        for r in records:
            if first <= r.seq <= last:
                proofs[r.seq] = proof_in(checkpoint, leaves, r.seq)
    return build_pack(REQUEST_ID, records, proofs, key.public_key(), made_at=T0.isoformat())


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def repacked(data: bytes, change: Callable[[dict[str, bytes]], None]) -> bytes:
    files = members(data)
    change(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def edit_records(data: bytes, edit: Callable[[dict[str, Any]], None], line: int = 0) -> bytes:
    def change(files: dict[str, bytes]) -> None:
        rows = [json.loads(text) for text in files[RECORDS].decode().splitlines()]
        edit(rows[line])
        files[RECORDS] = "".join(json.dumps(row) + "\n" for row in rows).encode()

    return repacked(data, change)


def test_a_pack_holds_records_proofs_checkpoints_key_and_a_readable_summary():
    files = members(pack())
    assert set(files) == {
        RECORDS,
        PROOFS,
        CHECKPOINTS,
        PUBLIC_KEY,
        REPORT_JSON,
        REPORT_HTML,
        "README.txt",
    }
    rows = [json.loads(line) for line in files[RECORDS].decode().splitlines()]
    assert [row["seq"] for row in rows] == list(OURS)
    assert all(row["content"]["subject"] == REQUEST_ID for row in rows)
    proofs = json.loads(files[PROOFS])["items"]
    assert [(p["seq"], p["index"], p["checkpoint"]["last_seq"]) for p in proofs] == [
        (3, 2, 6),
        (5, 4, 6),
        (6, 5, 6),
        (9, 2, 14),
        (12, 5, 14),
    ]
    assert [json.loads(line)["last_seq"] for line in files[CHECKPOINTS].splitlines()] == [6, 14]
    assert files[PUBLIC_KEY].decode() == public_key_pem(KEY.public_key())
    summary = json.loads(files[REPORT_JSON])
    assert summary["request_id"] == REQUEST_ID and len(summary["records"]) == len(OURS)
    page = files[REPORT_HTML].decode()
    assert "<script>rita" not in page and "&lt;script&gt;rita" in page
    assert "--evidence" in files["README.txt"].decode()


def test_an_intact_pack_verifies_with_the_public_key_alone():
    verdict = verify_pack(pack(), KEY.public_key())
    assert verdict.ok, verdict.problems
    assert (verdict.records, verdict.checkpoints, verdict.request_id) == (5, 2, REQUEST_ID)
    assert not verdict.key_from_pack
    own = verify_pack(pack())
    assert own.ok and own.key_from_pack and own.key_id == verdict.key_id


def test_a_changed_content_field_is_found():
    def rename(row: dict[str, Any]) -> None:
        row["content"]["actor"] = "mallory"

    verdict = verify_pack(edit_records(pack(), rename, line=1), KEY.public_key())
    assert not verdict.ok
    assert verdict.problems == ["the content of record 5 does not match its leaf hash"]


def test_a_changed_record_with_its_leaf_recomputed_fails_its_proof():
    def forge(row: dict[str, Any]) -> None:
        row["content"]["outcome"] = "approved"
        row["leaf"] = chain.leaf_of(row["content"])

    verdict = verify_pack(edit_records(pack(), forge, line=3), KEY.public_key())
    assert verdict.problems == [
        "the audit path of record 9 does not lead to the root of checkpoint 7..14"
    ]


def test_another_key_or_a_re_signed_pack_is_refused():
    stranger = Ed25519PrivateKey.generate()
    verdict = verify_pack(pack(), stranger.public_key())
    assert not verdict.ok and len(verdict.problems) == 2
    assert all("is not signed by this key" in problem for problem in verdict.problems)
    # Checkpoints re-signed by someone else, who put their key in the pack: consistent, so
    # only the key the verifier trusts tells them apart.
    forged = pack(stranger)
    assert len(verify_pack(forged, KEY.public_key()).problems) == 2
    from_pack = verify_pack(forged)
    assert from_pack.ok and from_pack.key_from_pack
    assert from_pack.key_id != verify_pack(pack()).key_id


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda files: files.pop(CHECKPOINTS), "checkpoints.jsonl is missing"),
        (lambda files: files.update({PROOFS: b"{not json"}), "the pack is malformed"),
        (lambda files: files.update({RECORDS: b""}), "records.jsonl holds no record"),
        (
            lambda files: files.update({CHECKPOINTS: files[CHECKPOINTS].splitlines()[1]}),
            "the checkpoint ending at 6, which seals record 3, is not in the pack",
        ),
        (
            lambda files: files.update(
                {PROOFS: json.dumps({"items": json.loads(files[PROOFS])["items"][1:]}).encode()}
            ),
            "record 3 has no proof",
        ),
    ],
)
def test_a_pack_missing_a_part_is_refused(change, expected):
    verdict = verify_pack(repacked(pack(), change), KEY.public_key())
    assert not verdict.ok
    assert any(expected in problem for problem in verdict.problems), verdict.problems


def test_a_damaged_archive_is_refused():
    data = bytearray(pack())
    data[len(data) // 3] ^= 0xFF
    verdict = verify_pack(bytes(data), KEY.public_key())
    assert not verdict.ok and verdict.problems
    assert not verify_pack(b"not a zip").ok


def test_the_offline_verifier_checks_a_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good, bad, key = tmp_path / "good.zip", tmp_path / "bad.zip", tmp_path / "key.pem"
    good.write_bytes(pack())
    bad.write_bytes(edit_records(pack(), lambda row: row["content"].update(reason="x")))
    key.write_text(public_key_pem(KEY.public_key()))

    assert offline.main(["--evidence", str(good), "--public-key", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert offline.main(["--evidence", str(good)]) == 0
    assert "verified with the key it brings" in capsys.readouterr().err
    assert offline.main(["--evidence", str(bad), "--public-key", str(key)]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["ok"] is False
    assert "NOT verified: the content of record 3 does not match its leaf hash" in out.err
    with pytest.raises(SystemExit) as refused:
        offline.main(["--records", str(good)])
    assert refused.value.code == 2


def test_a_proof_checks_against_its_checkpoint():
    checkpoint = sealed(7, 14)
    leaves = [(r.seq, r.leaf) for r in ALL[6:14]]
    proof = proof_in(checkpoint, leaves, 12)
    assert proof.index == 5 and proof.checkpoint == checkpoint
    assert merkle.verify_inclusion(
        bytes.fromhex(ALL[11].leaf),
        proof.index,
        checkpoint.size,
        [bytes.fromhex(node) for node in proof.path],
        bytes.fromhex(checkpoint.root),
    )
    assert evidence.Proof(12, 5, proof.path, checkpoint).to_dict()["checkpoint"] == {
        "first_seq": 7,
        "last_seq": 14,
    }


def test_a_timeline_given_is_summarised_in_the_pack():
    records = [r for r in ALL if r.seq in (1, 2)]
    checkpoint = sealed(1, 6)
    leaves = [(r.seq, r.leaf) for r in ALL[:6]]
    proofs = {r.seq: proof_in(checkpoint, leaves, r.seq) for r in records}
    steps = [{"name": "validation", "service": "validator", "actor": "<i>v</i>", "outcome": "ok"}]
    data = build_pack(
        REQUEST_ID,
        records,
        proofs,
        KEY.public_key(),
        made_at=T0.isoformat(),
        timeline={"request_id": REQUEST_ID, "steps": steps},
    )
    files = members(data)
    assert json.loads(files[REPORT_JSON])["timeline"]["steps"] == steps
    page = files[REPORT_HTML].decode()
    assert "<h2>Steps</h2>" in page and "&lt;i&gt;v&lt;/i&gt;" in page and "<i>" not in page


def test_a_pack_over_a_range_a_crash_skipped_numbers_in_verifies():
    # 1..4, then the identity column resumed at 37 after a crash: one checkpoint seals 1..40.
    kept = [record(seq) for seq in (1, 2, 3, 4, 37, 38, 39, 40)]
    kept[5].subject = kept[5].request_id = REQUEST_ID  # record 38 is the request's too
    kept[5].leaf = chain.leaf_of(repository.content_of(kept[5]))
    leaves = [(r.seq, r.leaf) for r in kept]
    checkpoint = sign(
        Checkpoint(
            first_seq=1,
            last_seq=40,
            size=len(kept),
            root=merkle.root([bytes.fromhex(leaf) for _, leaf in leaves]).hex(),
            prev_root=NO_PREVIOUS_ROOT,
            created_at=T0.isoformat(),
            key_id="",
        ),
        KEY,
    )
    ours = [kept[2], kept[5]]  # records 3 and 38
    proofs = {r.seq: proof_in(checkpoint, leaves, r.seq) for r in ours}
    assert proofs[38].index == 5
    data = build_pack(REQUEST_ID, ours, proofs, KEY.public_key(), made_at=T0.isoformat())
    verdict = verify_pack(data, KEY.public_key())
    assert verdict.ok, verdict.problems

    def misplace(files: dict[str, bytes]) -> None:
        body = json.loads(files[PROOFS])
        body["items"][1]["index"] = 37  # where 38 would be had nothing been skipped
        files[PROOFS] = json.dumps(body).encode()

    refused = verify_pack(repacked(data, misplace), KEY.public_key())
    assert not refused.ok and "record 38 is not at index 37" in refused.problems[0]
