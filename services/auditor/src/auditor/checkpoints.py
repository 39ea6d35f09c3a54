"""Signed checkpoints (a Merkle root over a range of records, Ed25519) and the offline
verifier's core: an exported range of records checked with nothing but the public key."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from auditor import merkle

NO_PREVIOUS_ROOT = "0" * 64


@dataclass(frozen=True)
class Checkpoint:
    first_seq: int
    last_seq: int
    size: int
    root: str
    prev_root: str
    created_at: str
    key_id: str
    signature: str = ""

    def statement(self) -> bytes:
        """What the signature covers: every field but the signature, as RFC 8785 JSON."""
        fields = self.to_dict()
        del fields["signature"]
        return rfc8785.dumps(fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        expected = {field.name: field.type for field in dataclasses.fields(cls)}
        if set(data) != set(expected):
            raise ValueError(f"a checkpoint has exactly the fields {sorted(expected)}")
        for name, type_name in expected.items():
            value = data[name]
            # bool is an int to Python, never to a checkpoint
            wanted = int if type_name == "int" else str
            if type(value) is not wanted:
                raise ValueError(f"checkpoint field {name} must be {type_name}")
        return cls(**data)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(unsigned: Checkpoint, private_key: Ed25519PrivateKey) -> Checkpoint:
    """The checkpoint signed; its key_id is set from the key, so it always names the signer."""
    named = dataclasses.replace(unsigned, key_id=key_id_of(private_key.public_key()), signature="")
    signature = private_key.sign(named.statement())
    return dataclasses.replace(named, signature=base64.b64encode(signature).decode())


def verify_signature(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    if checkpoint.key_id != key_id_of(public_key):
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, checkpoint.statement())
    except (binascii.Error, InvalidSignature):
        return False
    return True


def new_key_pair_pem() -> tuple[bytes, bytes]:
    """A fresh (private, public) pair: PKCS#8 and SubjectPublicKeyInfo PEM, unencrypted."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return key


def content_leaf(content: Mapping[str, Any]) -> bytes:
    """A record's Merkle leaf: the leaf hash of its canonical content."""
    return merkle.leaf_hash(rfc8785.dumps(dict(content)))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked_records: int
    checked_checkpoints: int
    broken_at_seq: int | None = None
    reason: str | None = None
    unsealed: int = 0
    # Records exported as their leaf alone (another tenant's): sealed, not read.
    withheld: int = 0


@dataclass(frozen=True)
class _Record:
    seq: int
    leaf: str
    # None: withheld from this reader (another tenant's record); its leaf still counts.
    content: dict[str, Any] | None
    # The record's place in the keyed chain, when the export gives it: the offline verifier
    # cannot check a link without the key, but it can see that each record names the one
    # before it, so a skipped number with the links intact is no missing record.
    prev_hash: str | None = None
    hash: str | None = None


class _Broken(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def verify_export(
    records: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey,
) -> Verdict:
    """Check an exported run of records against the signed checkpoints, and locate the first
    problem.

    The export runs from its lowest seq to its end: every record that a supplied checkpoint
    seals from there on must be in it, so cutting the tail, even whole sealed ranges, is
    caught. Checkpoints that end before the export are checked for signature and chaining
    only. Records after the last checkpoint are counted as unsealed, which is not an error.

    Seqs order the records but may skip numbers (a database crash, a rolled-back append): a
    checkpoint signs how many records its range holds, and a skipped number is missing unless
    the checkpoint sealing it counted it out or the record after it links to the one before.
    """
    walk = _ExportWalk(public_key)
    try:
        walk.run(_parse(records), list(checkpoints))
    except _Broken as broken:
        return Verdict(
            False, walk.checked_records, walk.checked_checkpoints, broken.seq, broken.reason
        )
    return Verdict(
        True,
        walk.checked_records,
        walk.checked_checkpoints,
        unsealed=walk.unsealed,
        withheld=walk.withheld,
    )


class _ExportWalk:
    """One pass over the records in export order, checkpoint by checkpoint."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.checked_records = 0
        self.checked_checkpoints = 0
        self.unsealed = 0
        self.withheld = 0

    def run(self, records: list[_Record], checkpoints: list[Checkpoint]) -> None:
        self.records = records
        self.present = {record.seq for record in records}
        self.seen: set[int] = set()
        self.position = 0
        self.previous: _Record | None = None
        export_start = min(self.present, default=None)
        previous: Checkpoint | None = None
        for checkpoint in checkpoints:
            self._check_header(checkpoint, previous)
            previous = checkpoint
            if export_start is None or checkpoint.last_seq < export_start:
                continue  # seals records before the export: context for the chain only
            if self.position == 0 and export_start < checkpoint.first_seq:
                raise _Broken(
                    export_start,
                    f"records {export_start}..{checkpoint.first_seq - 1} are sealed by no "
                    "supplied checkpoint (a checkpoint is missing)",
                )
            self._check_sealed_range(checkpoint)
        # After the last checkpoint: checked one by one, not sealed yet.
        while self.position < len(records):
            self._check_record(records[self.position], spare=0)
            self.unsealed += 1

    def _check_header(self, checkpoint: Checkpoint, previous: Checkpoint | None) -> None:
        at = checkpoint.first_seq
        name = f"checkpoint {checkpoint.first_seq}..{checkpoint.last_seq}"
        if not verify_signature(checkpoint, self.public_key):
            raise _Broken(at, f"{name} is not signed by this key")
        span = checkpoint.last_seq - checkpoint.first_seq + 1
        if checkpoint.first_seq < 1 or not 1 <= checkpoint.size <= span:
            raise _Broken(at, f"{name} claims {checkpoint.size} records")
        if previous is None:
            if checkpoint.first_seq == 1 and checkpoint.prev_root != NO_PREVIOUS_ROOT:
                raise _Broken(at, f"{name} is the first but names a previous root")
            return
        if checkpoint.prev_root != previous.root:
            raise _Broken(
                at,
                f"{name} does not chain to checkpoint {previous.first_seq}..{previous.last_seq}"
                " (prev_root differs: a checkpoint is missing, reordered or replaced)",
            )
        # Numbers between two checkpoints are ones no record was given (no record can be
        # there: the sealer seals every record after the last checkpoint).
        if checkpoint.first_seq <= previous.last_seq:
            raise _Broken(
                at, f"{name} does not continue checkpoint {previous.first_seq}..{previous.last_seq}"
            )

    def _check_sealed_range(self, checkpoint: Checkpoint) -> None:
        name = f"checkpoint {checkpoint.first_seq}..{checkpoint.last_seq}"
        # The numbers the checkpoint's range skips: it signed `size` records over its span.
        spare = checkpoint.last_seq - checkpoint.first_seq + 1 - checkpoint.size
        leaves: list[bytes] = []
        while self.position < len(self.records):
            record = self.records[self.position]
            if record.seq > checkpoint.last_seq:
                break
            if not leaves:
                self._check_first_of_range(record, checkpoint)
            spare -= self._check_record(record, spare=spare)
            leaves.append(bytes.fromhex(record.leaf))
        last_seen = self.previous.seq if leaves and self.previous else checkpoint.first_seq - 1
        if last_seen < checkpoint.last_seq:
            raise _Broken(
                last_seen + 1,
                f"records {last_seen + 1}..{checkpoint.last_seq} sealed by {name} are missing",
            )
        if len(leaves) != checkpoint.size:
            raise _Broken(
                checkpoint.first_seq,
                f"{name} seals {checkpoint.size} records; "
                f"the export has {len(leaves)} in its range",
            )
        if merkle.root(leaves).hex() != checkpoint.root.lower():
            raise _Broken(
                checkpoint.first_seq,
                f"records {checkpoint.first_seq}..{checkpoint.last_seq} do not match the root "
                "their checkpoint signed",
            )
        self.checked_checkpoints += 1

    def _check_first_of_range(self, record: _Record, checkpoint: Checkpoint) -> None:
        """A checkpoint's first and last seq are records' (the sealer takes them from the
        records): the range's first record is the checkpoint's first."""
        if record.seq < checkpoint.first_seq and record.seq not in self.seen:
            raise _Broken(record.seq, f"record {record.seq} is sealed by no supplied checkpoint")
        if record.seq > checkpoint.first_seq:
            raise _Broken(checkpoint.first_seq, f"record {checkpoint.first_seq} is missing")

    def _check_record(self, record: _Record, *, spare: int) -> int:
        """Check the record's place after the one before it and its leaf; how many numbers
        it skipped that only the sealing checkpoint's count accounts for."""
        skipped = self._check_place(record, spare=spare)
        if record.content is None:
            # Only its place in the Merkle tree can be checked, which the root does.
            if not _is_hash(record.leaf):
                raise _Broken(record.seq, f"the leaf of record {record.seq} is not a hash")
            self.withheld += 1
        else:
            try:
                leaf = content_leaf(record.content).hex()
            except rfc8785.CanonicalizationError:
                raise _Broken(
                    record.seq, f"the content of record {record.seq} is not canonical JSON"
                ) from None
            if leaf != record.leaf:
                raise _Broken(
                    record.seq, f"the content of record {record.seq} does not match its leaf hash"
                )
            self.checked_records += 1
        self.position += 1
        self.previous = record
        self.seen.add(record.seq)
        return skipped

    def _check_place(self, record: _Record, *, spare: int) -> int:
        previous = self.previous
        if previous is None:
            return 0  # the export's first record: nothing before it to follow
        expected = previous.seq + 1
        if record.seq < expected:
            if record.seq in self.seen:
                raise _Broken(
                    expected, f"record {record.seq} appears again after record {previous.seq}"
                )
            raise _Broken(expected, f"records out of order: {record.seq} after {previous.seq}")
        linked = _links(previous, record)
        if linked is False:
            if record.seq > expected:
                raise _Broken(
                    expected,
                    f"records {expected}..{record.seq - 1} are missing: record {record.seq} "
                    f"does not link to record {previous.seq}",
                )
            raise _Broken(record.seq, f"record {record.seq} does not link to record {previous.seq}")
        if record.seq == expected or linked:
            return 0
        if expected in self.present:
            raise _Broken(
                expected, f"records out of order: {record.seq} where {expected} should be"
            )
        skipped = record.seq - expected
        if skipped > spare:
            raise _Broken(expected, f"record {expected} is missing")
        return skipped


def _links(previous: _Record, record: _Record) -> bool | None:
    """Whether the record names the one before it as its predecessor; None if the export
    does not say."""
    if record.prev_hash is None or previous.hash is None:
        return None
    return record.prev_hash == previous.hash


def _is_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _parse(rows: Iterable[Mapping[str, Any]]) -> list[_Record]:
    records = []
    for position, row in enumerate(rows):
        seq, leaf, content = row.get("seq"), row.get("leaf"), row.get("content")
        prev_hash, link = row.get("prev_hash"), row.get("hash")
        if (
            type(seq) is not int
            or not isinstance(leaf, str)
            or not (content is None or isinstance(content, dict))
            or not all(v is None or (isinstance(v, str) and _is_hash(v)) for v in (prev_hash, link))
        ):
            at = seq if type(seq) is int else None
            raise _Broken(
                at,
                f"record at position {position} lacks an int seq, a hex leaf or a content "
                "object, or has links that are not hashes",
            )
        records.append(_Record(seq, leaf.lower(), content, prev_hash, link))
    return records
