import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.merkle import inclusion_proof, leaf_hash, root, verify_inclusion


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"record {i}".encode()) for i in range(n)]


def node(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01" + left + right)


def test_leaf_hash_is_prefixed_with_a_zero_byte():
    assert leaf_hash(b"abc") == sha(b"\x00abc")


def test_the_empty_tree_is_the_hash_of_nothing():
    assert root([]) == sha(b"")


def test_a_single_leaf_is_its_own_root():
    [a] = leaves(1)
    assert root([a]) == a


def test_small_trees_split_at_the_largest_power_of_two():
    a, b, c, d, e = leaves(5)
    assert root([a, b]) == node(a, b)
    # three leaves: (a b) c, the lone c promoted, never duplicated
    assert root([a, b, c]) == node(node(a, b), c)
    assert root([a, b, c, d]) == node(node(a, b), node(c, d))
    assert root([a, b, c, d, e]) == node(node(node(a, b), node(c, d)), e)


def test_seven_leaves_by_hand():
    a, b, c, d, e, f, g = leaves(7)
    expected = node(node(node(a, b), node(c, d)), node(node(e, f), g))
    assert root([a, b, c, d, e, f, g]) == expected
    # the audit path of e: f, then g, then the left half
    assert inclusion_proof([a, b, c, d, e, f, g], 4) == [f, g, node(node(a, b), node(c, d))]
    # the audit path of g: the (e f) node, then the left half
    assert inclusion_proof([a, b, c, d, e, f, g], 6) == [node(e, f), node(node(a, b), node(c, d))]


def test_every_leaf_of_trees_up_to_17_verifies():
    for size in range(1, 18):
        tree = leaves(size)
        tree_root = root(tree)
        for index in range(size):
            proof = inclusion_proof(tree, index)
            assert verify_inclusion(tree[index], index, size, proof, tree_root), (size, index)


def test_a_wrong_leaf_index_proof_or_root_fails():
    tree = leaves(11)
    tree_root = root(tree)
    proof = inclusion_proof(tree, 6)
    assert verify_inclusion(tree[6], 6, 11, proof, tree_root)
    assert not verify_inclusion(tree[5], 6, 11, proof, tree_root)
    assert not verify_inclusion(tree[6], 5, 11, proof, tree_root)
    assert not verify_inclusion(tree[6], 7, 11, proof, tree_root)
    assert not verify_inclusion(tree[6], 6, 11, proof, root(tree[:10]))
    assert not verify_inclusion(tree[6], 6, 11, [*proof[:-1], sha(b"forged")], tree_root)
    assert not verify_inclusion(tree[6], 6, 11, proof[:-1], tree_root)
    assert not verify_inclusion(tree[6], 6, 11, [*proof, proof[-1]], tree_root)
    # a size whose tree has another shape around the leaf (the size itself is committed only
    # through that shape: 11 and 12 give leaf 6 the same path)
    assert not verify_inclusion(tree[6], 6, 8, proof, tree_root)
    assert not verify_inclusion(tree[6], 6, 7, proof, tree_root)


def test_an_index_outside_the_tree_fails():
    tree = leaves(4)
    assert not verify_inclusion(tree[0], 4, 4, inclusion_proof(tree, 3), root(tree))
    assert not verify_inclusion(tree[0], -1, 4, inclusion_proof(tree, 0), root(tree))
    with pytest.raises(IndexError):
        inclusion_proof(tree, 4)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_every_proof_verifies_and_only_for_its_own_leaf(records, data):
    tree = [leaf_hash(record) for record in records]
    index = data.draw(st.integers(0, len(tree) - 1))
    proof = inclusion_proof(tree, index)
    tree_root = root(tree)
    assert verify_inclusion(tree[index], index, len(tree), proof, tree_root)
    other = data.draw(st.integers(0, len(tree) - 1))
    if tree[other] != tree[index]:
        assert not verify_inclusion(tree[other], index, len(tree), proof, tree_root)


@given(st.lists(st.binary(max_size=8), min_size=2, max_size=40))
def test_the_root_commits_to_every_leaf_and_their_order(records):
    tree = [leaf_hash(record) for record in records]
    swapped = [tree[-1], *tree[1:-1], tree[0]]
    if swapped != tree:
        assert root(swapped) != root(tree)
    assert root(tree[:-1]) != root(tree)


# The roots of the certificate-transparency reference implementation's test tree
# (RFC 6962), for its first 1..8 leaves.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_the_reference_test_vectors():
    tree = [leaf_hash(bytes.fromhex(data)) for data in CT_LEAVES]
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert root(tree[:size]).hex() == expected
