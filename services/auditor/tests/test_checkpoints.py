import dataclasses
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor import merkle
from auditor.checkpoints import (
    NO_PREVIOUS_ROOT,
    Checkpoint,
    key_id_of,
    load_private_key,
    load_public_key,
    new_key_pair_pem,
    sign,
    verify_export,
    verify_signature,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
RANGES = [(1, 10), (11, 20), (21, 30)]


def record(seq: int, **changes: Any) -> dict[str, Any]:
    content = {"seq": seq, "type": "request.submitted", "request_id": f"req-{seq % 7}", **changes}
    leaf = merkle.leaf_hash(rfc8785.dumps(content)).hex()
    return {"seq": seq, "leaf": leaf, "content": content}


def seal(records, ranges=RANGES, key=KEY) -> list[Checkpoint]:
    by_seq = {row["seq"]: row for row in records}
    checkpoints, prev_root = [], NO_PREVIOUS_ROOT
    for first, last in ranges:
        leaves = [bytes.fromhex(by_seq[seq]["leaf"]) for seq in range(first, last + 1)]
        unsigned = Checkpoint(
            first_seq=first,
            last_seq=last,
            size=last - first + 1,
            root=merkle.root(leaves).hex(),
            prev_root=prev_root,
            created_at="2026-11-26T16:00:00Z",
            key_id="",
        )
        checkpoints.append(sign(unsigned, key))
        prev_root = checkpoints[-1].root
    return checkpoints


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return [record(seq) for seq in range(1, 33)]  # 30 sealed, 2 not yet


@pytest.fixture
def checkpoints(records) -> list[Checkpoint]:
    return seal(records)


def broken(verdict, at: int, words: str) -> bool:
    return not verdict.ok and verdict.broken_at_seq == at and words in (verdict.reason or "")


# --- signatures


def test_a_signed_checkpoint_verifies_and_names_its_key(checkpoints):
    checkpoint = checkpoints[0]
    assert checkpoint.key_id == key_id_of(PUBLIC) and len(checkpoint.key_id) == 16
    assert verify_signature(checkpoint, PUBLIC)


def test_changing_any_signed_field_breaks_the_signature(checkpoints):
    checkpoint = checkpoints[1]
    for change in (
        {"first_seq": 12},
        {"last_seq": 19},
        {"size": 9},
        {"root": "ab" * 32},
        {"prev_root": NO_PREVIOUS_ROOT},
        {"created_at": "2026-11-26T16:00:01Z"},
    ):
        assert not verify_signature(dataclasses.replace(checkpoint, **change), PUBLIC), change


def test_another_key_or_a_garbled_signature_does_not_verify(checkpoints):
    other = Ed25519PrivateKey.generate()
    assert not verify_signature(checkpoints[0], other.public_key())
    # the right key id, the wrong signer
    forged = dataclasses.replace(sign(checkpoints[0], other), key_id=key_id_of(PUBLIC))
    assert not verify_signature(forged, PUBLIC)
    assert not verify_signature(dataclasses.replace(checkpoints[0], signature="%%%"), PUBLIC)
    assert not verify_signature(dataclasses.replace(checkpoints[0], signature=""), PUBLIC)


def test_the_statement_is_canonical_json_without_the_signature(checkpoints):
    checkpoint = checkpoints[0]
    statement = json.loads(checkpoint.statement())
    assert "signature" not in statement
    assert statement["root"] == checkpoint.root and statement["first_seq"] == 1
    assert checkpoint.statement() == rfc8785.dumps(statement)


def test_a_checkpoint_survives_a_round_trip_through_json(checkpoints):
    checkpoint = checkpoints[2]
    again = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
    assert again == checkpoint and verify_signature(again, PUBLIC)


def test_from_dict_refuses_missing_extra_or_mistyped_fields(checkpoints):
    data = checkpoints[0].to_dict()
    with pytest.raises(ValueError):
        Checkpoint.from_dict({k: v for k, v in data.items() if k != "root"})
    with pytest.raises(ValueError):
        Checkpoint.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError):
        Checkpoint.from_dict({**data, "size": "10"})
    with pytest.raises(ValueError):
        Checkpoint.from_dict({**data, "first_seq": True})


def test_keys_round_trip_through_pem_files(tmp_path):
    private_pem, public_pem = new_key_pair_pem()
    (tmp_path / "private.pem").write_bytes(private_pem)
    (tmp_path / "public.pem").write_bytes(public_pem)
    private_key = load_private_key(tmp_path / "private.pem")
    public_key = load_public_key(str(tmp_path / "public.pem"))
    unsigned = Checkpoint(1, 1, 1, "00" * 32, NO_PREVIOUS_ROOT, "2026-11-26T16:00:00Z", "")
    assert verify_signature(sign(unsigned, private_key), public_key)
    with pytest.raises(ValueError):
        load_public_key(tmp_path / "private.pem")


# --- the offline verifier


def test_an_untouched_export_verifies(records, checkpoints):
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert verdict.ok, verdict
    assert verdict.checked_records == 32
    assert verdict.checked_checkpoints == 3
    assert verdict.unsealed == 2
    assert verdict.broken_at_seq is None and verdict.reason is None


def test_an_export_aligned_on_a_checkpoint_verifies_with_every_checkpoint(records, checkpoints):
    verdict = verify_export(records[10:], checkpoints, PUBLIC)
    assert verdict.ok, verdict
    assert (verdict.checked_records, verdict.checked_checkpoints) == (22, 2)


def test_an_export_without_checkpoints_is_all_unsealed(records):
    verdict = verify_export(records, [], PUBLIC)
    assert verdict.ok and verdict.unsealed == 32 and verdict.checked_checkpoints == 0


def test_an_edited_record_is_located(records, checkpoints):
    records[14] = {**records[14], "content": {**records[14]["content"], "type": "forged"}}
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 15, "content of record 15"), verdict
    assert verdict.checked_records == 14


def test_an_edited_unsealed_record_is_located_too(records, checkpoints):
    records[31] = {**records[31], "content": {"seq": 32, "type": "forged"}}
    assert broken(verify_export(records, checkpoints, PUBLIC), 32, "content of record 32")


def test_a_record_deleted_in_the_middle_is_located(records, checkpoints):
    del records[16]
    assert broken(verify_export(records, checkpoints, PUBLIC), 17, "record 17 is missing")


def test_deleting_the_last_records_of_a_sealed_range_is_located(records, checkpoints):
    del records[26:]  # 27..32 gone: the last checkpoint seals 21..30
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 27, "records 27..30 sealed by checkpoint 21..30 are missing"), verdict


def test_deleting_whole_sealed_ranges_at_the_tail_is_located(records, checkpoints):
    del records[20:]
    assert broken(verify_export(records, checkpoints, PUBLIC), 21, "records 21..30"), "tail"


def test_deleting_the_end_of_an_earlier_range_is_located(records, checkpoints):
    del records[8:10]
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 9, "records 9..10 sealed by checkpoint 1..10 are missing"), verdict


def test_swapped_records_are_located(records, checkpoints):
    records[4], records[5] = records[5], records[4]
    assert broken(verify_export(records, checkpoints, PUBLIC), 5, "out of order")


def test_a_repeated_record_is_located(records, checkpoints):
    records.insert(12, records[3])
    assert broken(
        verify_export(records, checkpoints, PUBLIC), 13, "record 4 appears again after record 12"
    )


def test_swapped_contents_under_kept_seqs_break_the_root(records, checkpoints):
    # the seqs stay in place, the leaves travel with their contents
    records[4], records[5] = (
        {**records[5], "seq": 5},
        {**records[4], "seq": 6},
    )
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 1, "do not match the root"), verdict


def test_records_and_leaves_replaced_consistently_break_the_root(records, checkpoints):
    forged = [record(seq, actor="mallory") for seq in range(1, 33)]
    verdict = verify_export(forged, checkpoints, PUBLIC)
    assert broken(verdict, 1, "records 1..10 do not match the root"), verdict
    assert verdict.checked_checkpoints == 0


def test_rewriting_one_later_range_is_located_at_that_range(records, checkpoints):
    records[10:20] = [record(seq, actor="mallory") for seq in range(11, 21)]
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 11, "records 11..20 do not match the root"), verdict
    assert verdict.checked_checkpoints == 1


def test_a_checkpoint_forged_with_another_key_is_located(records, checkpoints):
    # the attacker rewrites records 11..20 and re-seals them under a key of their own
    records[10:20] = [record(seq, actor="mallory") for seq in range(11, 21)]
    mallory = Ed25519PrivateKey.generate()
    forged = seal(records, key=mallory)
    checkpoints[1] = forged[1]
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 11, "checkpoint 11..20 is not signed by this key"), verdict


def test_a_checkpoint_claiming_our_key_id_with_a_foreign_signature_is_located(records, checkpoints):
    mallory = Ed25519PrivateKey.generate()
    checkpoints[2] = dataclasses.replace(sign(checkpoints[2], mallory), key_id=key_id_of(PUBLIC))
    assert broken(verify_export(records, checkpoints, PUBLIC), 21, "not signed by this key")


def test_a_dropped_checkpoint_breaks_the_prev_root_chain(records, checkpoints):
    del checkpoints[1]
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 21, "does not chain to checkpoint 1..10"), verdict


def test_a_dropped_first_checkpoint_leaves_records_unsealed_and_is_located(records, checkpoints):
    del checkpoints[0]
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert broken(verdict, 1, "sealed by no supplied checkpoint"), verdict


def test_reordered_checkpoints_are_located(records, checkpoints):
    checkpoints[1], checkpoints[2] = checkpoints[2], checkpoints[1]
    assert broken(verify_export(records, checkpoints, PUBLIC), 21, "does not chain")


def test_an_export_starting_inside_a_sealed_range_is_refused(records, checkpoints):
    verdict = verify_export(records[14:], checkpoints, PUBLIC)
    assert broken(verdict, 11, "record 11 is missing"), verdict


def test_the_first_problem_wins(records, checkpoints):
    records[24] = {**records[24], "content": {"seq": 25, "type": "forged"}}
    del records[6]
    assert broken(verify_export(records, checkpoints, PUBLIC), 7, "record 7 is missing")


def test_a_malformed_record_is_reported_not_raised(records, checkpoints):
    records[3] = {"seq": "4", "leaf": records[3]["leaf"], "content": records[3]["content"]}
    verdict = verify_export(records, checkpoints, PUBLIC)
    assert not verdict.ok and "position 3" in (verdict.reason or "")


def test_content_that_cannot_be_canonicalised_is_located(records, checkpoints):
    records[2] = {**records[2], "content": {"seq": 3, "huge": 2**60}}
    assert broken(verify_export(records, checkpoints, PUBLIC), 3, "not canonical JSON")


def test_sign_overwrites_a_stale_key_id(checkpoints):
    resigned = sign(dataclasses.replace(checkpoints[0], key_id="stale"), KEY)
    assert resigned.key_id == key_id_of(PUBLIC) and verify_signature(resigned, PUBLIC)


# --- numbers a crash skipped: seqs order the records, the checkpoints count them


def linked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with their chain links, as the auditor's export gives them (any hashes
    do: offline, a link is only checked to name the record before)."""
    prev = "0" * 64
    out = []
    for row in records:
        digest = merkle.leaf_hash(bytes.fromhex(prev) + bytes.fromhex(row["leaf"])).hex()
        out.append({**row, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


def seal_as_sealer(records, ranges) -> list[Checkpoint]:
    """Checkpoints over whichever records each range holds, as the sealer makes them."""
    checkpoints, prev_root = [], NO_PREVIOUS_ROOT
    for first, last in ranges:
        leaves = [bytes.fromhex(r["leaf"]) for r in records if first <= r["seq"] <= last]
        unsigned = Checkpoint(
            first_seq=first,
            last_seq=last,
            size=len(leaves),
            root=merkle.root(leaves).hex(),
            prev_root=prev_root,
            created_at="2026-12-07T16:00:00Z",
            key_id="",
        )
        checkpoints.append(sign(unsigned, KEY))
        prev_root = checkpoints[-1].root
    return checkpoints


# 1..12, then a crash: the identity column resumes at 45 (it logs 32 values ahead).
CRASHED = [*range(1, 13), *range(45, 65)]
CRASH_RANGES = [(1, 10), (11, 50), (51, 60)]


@pytest.fixture
def crashed() -> list[dict[str, Any]]:
    return linked([record(seq) for seq in CRASHED])


def test_a_history_with_a_crash_gap_verifies(crashed):
    verdict = verify_export(crashed, seal_as_sealer(crashed, CRASH_RANGES), PUBLIC)
    assert verdict.ok, verdict
    assert (verdict.checked_records, verdict.checked_checkpoints, verdict.unsealed) == (32, 3, 4)


def test_a_crash_gap_verifies_without_links_where_a_checkpoint_counts_it(crashed):
    bare = [{key: row[key] for key in ("seq", "leaf", "content")} for row in crashed[:28]]
    verdict = verify_export(bare, seal_as_sealer(crashed, CRASH_RANGES), PUBLIC)
    assert verdict.ok, verdict


def test_a_crash_gap_between_checkpoints_verifies(crashed):
    verdict = verify_export(crashed, seal_as_sealer(crashed, [(1, 12), (45, 60)]), PUBLIC)
    assert verdict.ok, verdict


def test_a_record_deleted_beside_a_crash_gap_is_located(crashed):
    sealed = seal_as_sealer(crashed, CRASH_RANGES)
    del crashed[12]  # record 45, the first after the gap
    verdict = verify_export(crashed, sealed, PUBLIC)
    assert broken(verdict, 13, "records 13..45 are missing: record 46 does not link"), verdict


def test_a_record_deleted_without_links_is_located_by_its_checkpoints_count(crashed):
    sealed = seal_as_sealer(crashed, CRASH_RANGES)
    bare = [{key: row[key] for key in ("seq", "leaf", "content")} for row in crashed]
    del bare[13]  # record 46: the range 11..50 then skips one number more than it counted out
    verdict = verify_export(bare, sealed, PUBLIC)
    assert broken(verdict, 46, "record 46 is missing"), verdict


def test_a_deleted_unsealed_record_is_located_across_a_gap(crashed):
    del crashed[-3]  # record 62, unsealed
    verdict = verify_export(crashed, seal_as_sealer(crashed, CRASH_RANGES), PUBLIC)
    assert broken(verdict, 62, "records 62..62 are missing: record 63 does not link"), verdict


def test_a_record_inserted_into_a_crash_gap_is_located(crashed):
    sealed = seal_as_sealer(crashed, CRASH_RANGES)
    forged = linked([record(seq) for seq in [*CRASHED[:12], 13, *CRASHED[12:]]])
    verdict = verify_export(forged, sealed, PUBLIC)
    assert broken(verdict, 11, "seals 8 records; the export has 9"), verdict


def test_a_record_inserted_between_checkpoints_is_located(crashed):
    sealed = seal_as_sealer(crashed, [(1, 12), (45, 60)])
    forged = linked([record(seq) for seq in [*CRASHED[:12], 13, *CRASHED[12:]]])
    verdict = verify_export(forged, sealed, PUBLIC)
    assert broken(verdict, 13, "record 13 is sealed by no supplied checkpoint"), verdict


def test_a_checkpoint_claiming_more_records_than_its_span_is_refused(crashed):
    sealed = seal_as_sealer(crashed, CRASH_RANGES)
    sealed[1] = sign(dataclasses.replace(sealed[1], size=41), KEY)
    assert broken(verify_export(crashed, sealed, PUBLIC), 11, "claims 41 records")


def test_overlapping_checkpoints_are_refused(crashed):
    sealed = seal_as_sealer(crashed, [(1, 12), (12, 60)])
    assert broken(verify_export(crashed, sealed, PUBLIC), 12, "does not continue")
