"""Merkle Tree Hash and inclusion proofs of RFC 9162 §2.1 (as in RFC 6962), pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# Domain separation: a leaf can never be passed off as an interior node, or the reverse.
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree's root over leaves that are already leaf hashes; the empty tree's is SHA-256("")."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _subtree_root(leaves, 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaves[index] (RFC 9162 §2.1.3.1), nearest sibling first."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    path: list[bytes] = []
    start, end = 0, len(leaves)
    # Walk down from the root, keeping the sibling subtree at each level; the path lists
    # them from the leaf up, hence the reversal.
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            path.append(_subtree_root(leaves, split, end))
            end = split
        else:
            path.append(_subtree_root(leaves, start, split))
            start = split
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `leaf` is leaf number `index` of the tree of `size` leaves with this root
    (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return False
    node, last = index, size - 1
    computed = leaf
    for sibling in proof:
        if last == 0:
            return False  # the proof is longer than the tree is deep
        if node & 1 or node == last:
            computed = node_hash(sibling, computed)
            # A right edge node with no sibling at this level is promoted unchanged:
            # skip the levels where it has none.
            if not node & 1:
                while node and not node & 1:
                    node >>= 1
                    last >>= 1
        else:
            computed = node_hash(computed, sibling)
        node >>= 1
        last >>= 1
    return last == 0 and computed == root


def _subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    if end - start == 1:
        return leaves[start]
    # Uneven trees split at the largest power of two below their size (never duplicate a node).
    split = start + _largest_power_of_two_below(end - start)
    return node_hash(_subtree_root(leaves, start, split), _subtree_root(leaves, split, end))


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)
