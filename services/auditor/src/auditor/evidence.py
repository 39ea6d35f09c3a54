"""Evidence for an external auditor: a record's Merkle inclusion proof against the signed
checkpoint that seals it, and a request's evidence pack (one zip: its records, their proofs,
the checkpoints, the public key, a readable summary) with the check of such a pack that
needs nothing but the public key. Everything but `proofs_of` is pure."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from auditor import checkpoints, merkle, repository, sealing
from auditor.compliance import formats
from auditor.models import AuditRecord

RECORDS = "records.jsonl"
PROOFS = "proofs.json"
CHECKPOINTS = "checkpoints.jsonl"
PUBLIC_KEY = "public-key.pem"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
README = "README.txt"
# Checked against the unpacked size before anything is read: a pack is a few records.
MAX_MEMBER_BYTES = 64 * 1024 * 1024

SUMMARY_COLUMNS = (
    "seq",
    "time",
    "type",
    "actor",
    "on_behalf_of",
    "step",
    "outcome",
    "before",
    "after",
    "reason",
)

# The timeline's steps (auditor.timeline), when the pack carries one.
STEP_COLUMNS = (
    "name",
    "service",
    "actor",
    "started_at",
    "finished_at",
    "duration_s",
    "outcome",
    "reason",
)

_README = """\
Evidence pack of request {request_id}
====================================

Made by the auditor of the IT provisioning platform at {made_at}.

{records}         one line per audit record of the request: its seq, its Merkle leaf and
                      its content (canonical RFC 8785 JSON of the content gives the leaf)
{proofs}           for each record: the checkpoint that seals it (by its last_seq), the
                      record's index in it and its Merkle audit path (RFC 9162)
{checkpoints}     the signed checkpoints involved (Ed25519 over RFC 8785 JSON)
{public_key}        the auditor's public key (compare it with GET /v1/audit/public-key
                      or the key you were given: a pack can bring any key)
{report_json}, {report_html}
                      a readable summary of the records and the request's steps, derived
                      from them: it is not evidence by itself

To verify it offline (no database, no network, no chain key):

    uv run python -m auditor.offline --evidence evidence.zip --public-key key.pem

Without --public-key the pack's own key is used, and the answer says so. The verifier
recomputes every record's leaf from its content, checks each audit path against the
root of its checkpoint, and checks every checkpoint's signature. It prints its verdict
as JSON and exits 0 if every check holds, 1 if not (naming what failed).

What it proves: every record in the pack is in the auditor's signed record, unchanged.
Not that the pack holds every record of the request: for that, export the whole ranges of
the checkpoints listed (GET /v1/audit/export) and verify them with --records.
"""


@dataclass(frozen=True)
class Proof:
    seq: int
    index: int
    path: tuple[str, ...]
    checkpoint: checkpoints.Checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "index": self.index,
            "proof": list(self.path),
            "checkpoint": {
                "first_seq": self.checkpoint.first_seq,
                "last_seq": self.checkpoint.last_seq,
            },
        }


def proof_in(sealed: checkpoints.Checkpoint, leaves: Sequence[tuple[int, str]], seq: int) -> Proof:
    """The audit path of record `seq` among `leaves` ((seq, hex leaf) in order), those of
    `sealed`. Its index is its place among them, which is `seq - first_seq` only where no
    number in the range was skipped (a crash skips some)."""
    index = next(place for place, (at, _) in enumerate(leaves) if at == seq)
    path = merkle.inclusion_proof([bytes.fromhex(leaf) for _, leaf in leaves], index)
    return Proof(seq, index, tuple(node.hex() for node in path), sealed)


async def proofs_of(session: AsyncSession, seqs: Iterable[int]) -> dict[int, Proof]:
    """Proofs of the records `seqs`; a record no checkpoint seals yet has none. The session
    must see every tenant's records: a checkpoint seals them all."""
    found: dict[int, Proof] = {}
    leaves_of: dict[int, tuple[checkpoints.Checkpoint, list[tuple[int, str]]]] = {}
    for seq in sorted(set(seqs)):
        known = next(
            (held for held in leaves_of.values() if held[0].first_seq <= seq <= held[0].last_seq),
            None,
        )
        if known is None:
            row = await repository.checkpoint_covering(session, seq)
            if row is None:
                continue
            leaves = await repository.leaves_between(session, row.first_seq, row.last_seq)
            known = leaves_of[row.last_seq] = (sealing.checkpoint_of(row), leaves)
        found[seq] = proof_in(known[0], known[1], seq)
    return found


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def summary_of(request_id: str, records: Sequence[AuditRecord]) -> dict[str, Any]:
    """What a reader wants first: the request's item, people and status, and its records."""
    facts: dict[str, Any] = {}
    for record in records:
        data = record.envelope.get("data")
        if isinstance(data, dict) and isinstance(data.get("catalog_item"), str):
            facts = data
            break
    status = next((r.after for r in reversed(records) if r.after is not None), None)
    return {
        "request_id": request_id,
        "tenant": next((r.tenant for r in records if r.tenant), None),
        "catalog_item": facts.get("catalog_item"),
        "operation": facts.get("operation"),
        "requester": facts.get("requester"),
        "last_status": status,
        "records": [
            {
                "seq": r.seq,
                "time": r.occurred_at.astimezone(UTC).isoformat(),
                "type": r.event_type,
                "actor": r.actor,
                "on_behalf_of": r.on_behalf_of,
                "step": r.step,
                "outcome": r.outcome,
                "before": r.before,
                "after": r.after,
                "reason": r.reason,
            }
            for r in records
        ],
    }


def summary_html(summary: Mapping[str, Any], extra: Sequence[tuple[str, Any]] = ()) -> str:
    facts = [
        (name.replace("_", " ").capitalize(), summary[name])
        for name in ("request_id", "tenant", "catalog_item", "operation", "requester")
    ]
    facts += [("Last status", summary["last_status"]), *extra]
    tables: list[tuple[str, Sequence[str], Sequence[Mapping[str, Any]]]] = [
        ("Audit records", SUMMARY_COLUMNS, summary["records"])
    ]
    journey = summary.get("timeline")
    steps = journey.get("steps") if isinstance(journey, Mapping) else None
    if isinstance(steps, list):
        tables.insert(0, ("Steps", STEP_COLUMNS, [s for s in steps if isinstance(s, Mapping)]))
    return formats.html_page(f"Evidence: request {summary['request_id']}", facts, tables)


def build_pack(
    request_id: str,
    records: Sequence[AuditRecord],
    proofs: Mapping[int, Proof],
    public_key: Ed25519PublicKey,
    *,
    made_at: str,
    timeline: Mapping[str, Any] | None = None,
) -> bytes:
    """The zip of a request whose every record is sealed (each has a proof); `timeline`
    (the request's steps as JSON) goes into the summary when given."""
    involved = {p.checkpoint.last_seq: p.checkpoint for p in proofs.values()}
    summary = summary_of(request_id, records)
    if timeline is not None:
        summary["timeline"] = dict(timeline)
    members = {
        RECORDS: "".join(
            json.dumps({"seq": r.seq, "leaf": r.leaf, "content": repository.content_of(r)}) + "\n"
            for r in records
        ),
        PROOFS: json.dumps(
            {"request_id": request_id, "items": [proofs[r.seq].to_dict() for r in records]},
            indent=2,
        ),
        CHECKPOINTS: "".join(
            json.dumps(involved[last].to_dict()) + "\n" for last in sorted(involved)
        ),
        PUBLIC_KEY: public_key_pem(public_key),
        REPORT_JSON: json.dumps(summary, indent=2),
        REPORT_HTML: summary_html(summary, [("Pack made at", made_at)]),
        README: _README.format(
            request_id=request_id,
            made_at=made_at,
            records=RECORDS,
            proofs=PROOFS,
            checkpoints=CHECKPOINTS,
            public_key=PUBLIC_KEY,
            report_json=REPORT_JSON,
            report_html=REPORT_HTML,
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as pack:
        for name, text in members.items():
            pack.writestr(name, text)
    return out.getvalue()


@dataclass(frozen=True)
class PackVerdict:
    ok: bool
    records: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    request_id: str | None = None
    key_id: str | None = None
    key_from_pack: bool = False


class _Unreadable(Exception):
    pass


def verify_pack(pack: bytes, public_key: Ed25519PublicKey | None = None) -> PackVerdict:
    """Every record's leaf recomputed from its content, every audit path checked against its
    checkpoint's root, every checkpoint's signature checked with `public_key` (else the key
    the pack brings, which proves only that the pack is consistent). Lists every problem."""
    try:
        with zipfile.ZipFile(io.BytesIO(pack)) as archive:
            members = {name: _read(archive, name) for name in (RECORDS, PROOFS, CHECKPOINTS)}
            pem = _read(archive, PUBLIC_KEY) if public_key is None else b""
    # A damaged archive fails in many ways: a header, a CRC, the deflate stream, a flag
    # read as encryption (RuntimeError) or an unknown compression (NotImplementedError).
    except (
        zipfile.BadZipFile,
        zlib.error,
        _Unreadable,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
    ) as broken:
        return PackVerdict(False, problems=[f"the pack cannot be read: {broken}"])
    try:
        key = public_key if public_key is not None else _public_key(pem)
        sealed = _checkpoints(members[CHECKPOINTS])
        records = _records(members[RECORDS])
        proofs = _proofs(members[PROOFS])
    except (ValueError, TypeError, KeyError, AttributeError) as broken:
        return PackVerdict(False, problems=[f"the pack is malformed: {broken}"])
    problems = _problems(records, proofs, sealed, key)
    subjects = sorted({str(content.get("subject")) for _, _, content in records})
    return PackVerdict(
        ok=not problems,
        records=len(records),
        checkpoints=len(sealed),
        problems=problems,
        request_id=subjects[0] if len(subjects) == 1 else None,
        key_id=checkpoints.key_id_of(key),
        key_from_pack=public_key is None,
    )


def _public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{PUBLIC_KEY} is not an Ed25519 public key")
    return key


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _Unreadable(f"{name} is missing") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise _Unreadable(f"{name} is larger than a pack's member may be")
    return archive.read(info)


def _lines(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _checkpoints(data: bytes) -> dict[int, checkpoints.Checkpoint]:
    found = [checkpoints.Checkpoint.from_dict(item) for item in _lines(data)]
    return {c.last_seq: c for c in found}


def _records(data: bytes) -> list[tuple[int, str, dict[str, Any]]]:
    records = []
    for position, row in enumerate(_lines(data), start=1):
        seq, leaf, content = row.get("seq"), row.get("leaf"), row.get("content")
        if type(seq) is not int or not isinstance(leaf, str) or not isinstance(content, dict):
            raise ValueError(f"line {position} of {RECORDS} lacks an int seq, a leaf or content")
        records.append((seq, leaf.lower(), content))
    if not records:
        raise ValueError(f"{RECORDS} holds no record")
    return records


def _proofs(data: bytes) -> dict[int, dict[str, Any]]:
    items = json.loads(data)["items"]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{PROOFS} items must be objects")
    return {item["seq"]: item for item in items}


def _problems(
    records: list[tuple[int, str, dict[str, Any]]],
    proofs: dict[int, dict[str, Any]],
    sealed: dict[int, checkpoints.Checkpoint],
    public_key: Ed25519PublicKey,
) -> list[str]:
    problems = [
        f"checkpoint {c.first_seq}..{c.last_seq} is not signed by this key "
        f"(key_id {checkpoints.key_id_of(public_key)})"
        for c in sealed.values()
        if not checkpoints.verify_signature(c, public_key)
    ]
    seen: set[int] = set()
    for seq, leaf, content in records:
        if seq in seen:
            problems.append(f"record {seq} appears twice")
        seen.add(seq)
        try:
            computed = checkpoints.content_leaf(content).hex()
        except rfc8785.CanonicalizationError:
            problems.append(f"the content of record {seq} is not canonical JSON")
            continue
        if computed != leaf:
            problems.append(f"the content of record {seq} does not match its leaf hash")
            continue
        problem = _proof_problem(seq, computed, proofs.get(seq), sealed)
        if problem is not None:
            problems.append(problem)
    subjects = {str(content.get("subject")) for _, _, content in records}
    if len(subjects) > 1:
        problems.append(f"the records belong to more than one request: {sorted(subjects)}")
    return problems


def _proof_problem(
    seq: int,
    leaf: str,
    proof: Mapping[str, Any] | None,
    sealed: Mapping[int, checkpoints.Checkpoint],
) -> str | None:
    if proof is None:
        return f"record {seq} has no proof"
    try:
        last = proof["checkpoint"]["last_seq"]
        index = proof["index"]
        path = [bytes.fromhex(node) for node in proof["proof"]]
        checkpoint = sealed.get(last)
        root = bytes.fromhex(checkpoint.root) if checkpoint is not None else b""
    except (KeyError, TypeError, ValueError):
        return f"the proof of record {seq} is malformed"
    if checkpoint is None:
        return f"the checkpoint ending at {last}, which seals record {seq}, is not in the pack"
    name = f"checkpoint {checkpoint.first_seq}..{checkpoint.last_seq}"
    # A range may skip numbers (its size is below its span): the record's index can be no
    # further in than its seq, and leaves no fewer records after it than the seqs left.
    if (
        type(index) is not int
        or not 0 <= index < checkpoint.size
        or index > seq - checkpoint.first_seq
        or checkpoint.size - 1 - index > checkpoint.last_seq - seq
    ):
        return f"record {seq} is not at index {index} of {name}"
    if not merkle.verify_inclusion(bytes.fromhex(leaf), index, checkpoint.size, path, root):
        return f"the audit path of record {seq} does not lead to the root of {name}"
    return None
