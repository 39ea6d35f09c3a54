import dataclasses

from auditor.chain import GENESIS, ChainedRecord, leaf_of, link, verify

KEY = bytes(range(32))


def build(contents, key=KEY):
    records, prev = [], GENESIS
    for seq, content in enumerate(contents, start=1):
        leaf = leaf_of(content)
        digest = link(key, prev, leaf)
        records.append(ChainedRecord(seq, content, leaf, prev, digest))
        prev = digest
    return records


def test_an_untouched_chain_verifies():
    verdict = verify(build([{"n": 1}, {"n": 2}, {"n": 3}]), KEY)
    assert verdict.ok and verdict.records == 3


def test_an_edited_record_is_located():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    records[1] = dataclasses.replace(records[1], content={"n": 20})
    verdict = verify(records, KEY)
    assert not verdict.ok and verdict.broken_at == 2


def test_an_edit_with_a_recomputed_leaf_still_fails_the_keyed_link():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    records[1] = dataclasses.replace(records[1], content={"n": 20}, leaf=leaf_of({"n": 20}))
    verdict = verify(records, KEY)
    assert not verdict.ok and verdict.broken_at == 2 and "key" in (verdict.reason or "")


def test_a_removed_record_is_located():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    verdict = verify([records[0], records[2]], KEY)
    assert not verdict.ok and verdict.broken_at == 3


def test_two_swapped_records_are_located():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    verdict = verify([records[0], records[2], records[1]], KEY)
    assert not verdict.ok and verdict.broken_at == 3


def test_a_chain_rebuilt_without_the_key_does_not_verify():
    forged = build([{"n": 1}, {"n": 2}], key=bytes(32))
    verdict = verify(forged, KEY)
    assert not verdict.ok and verdict.broken_at == 1


def test_canonical_json_ignores_key_order():
    assert leaf_of({"a": 1, "b": 2}) == leaf_of({"b": 2, "a": 1})


def renumbered(records, seqs):
    return [dataclasses.replace(r, seq=seq) for r, seq in zip(records, seqs, strict=True)]


def test_numbers_a_crash_skipped_are_no_missing_record():
    # After a crash an identity column resumes up to 32 values on: the links run straight on.
    records = renumbered(build([{"n": n} for n in range(5)]), [1, 2, 3, 36, 37])
    verdict = verify(records, KEY)
    assert verdict.ok and verdict.records == 5


def test_a_record_removed_beside_a_crash_gap_is_located_and_the_gap_named():
    records = renumbered(build([{"n": n} for n in range(5)]), [1, 2, 3, 36, 37])
    verdict = verify([*records[:3], records[4]], KEY)
    assert not verdict.ok and verdict.broken_at == 37
    assert verdict.reason == "does not link to record 3: records 4..36 are missing"


def test_a_run_continuing_another_names_the_gap_from_where_it_ended():
    records = renumbered(build([{"n": n} for n in range(3)]), [1, 2, 40])
    verdict = verify([records[2]], KEY, expected_prev=records[0].hash, previous_seq=1)
    assert not verdict.ok and verdict.broken_at == 40 and "records 2..39" in (verdict.reason or "")
