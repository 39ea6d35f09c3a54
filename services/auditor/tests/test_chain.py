from auditor.chain import GENESIS, ChainedRecord, record_hash, verify


def build(contents):
    records, prev = [], GENESIS
    for seq, content in enumerate(contents, start=1):
        digest = record_hash(prev, content)
        records.append(ChainedRecord(seq, content, prev, digest))
        prev = digest
    return records


def test_an_untouched_chain_verifies():
    verdict = verify(build([{"n": 1}, {"n": 2}, {"n": 3}]))
    assert verdict.ok and verdict.records == 3


def test_an_edited_record_is_located():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    records[1] = ChainedRecord(2, {"n": 20}, records[1].prev_hash, records[1].hash)
    verdict = verify(records)
    assert not verdict.ok and verdict.broken_at == 2


def test_a_removed_record_is_located():
    records = build([{"n": 1}, {"n": 2}, {"n": 3}])
    verdict = verify([records[0], records[2]])
    assert not verdict.ok and verdict.broken_at == 3


def test_canonical_json_ignores_key_order():
    assert record_hash(GENESIS, {"a": 1, "b": 2}) == record_hash(GENESIS, {"b": 2, "a": 1})
