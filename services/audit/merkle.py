"""The Merkle tree of the audit log, with RFC 9162 (Certificate Transparency 2.0) hashing:
leaf hash SHA-256(0x00 || entry), node hash SHA-256(0x01 || left || right), the tree of n
leaves split at the largest power of two below n. Inclusion and consistency proofs and
their verification, all pure; a third party needs only this module and the public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# A subtree hash of the leaves [start, end): from storage for perfect subtrees.
SubtreeHash = Callable[[int, int], bytes]


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, computed in full (for verification from the table)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    return _mth(level, 0, len(level))


def _mth(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return leaves[start]
    k = split(n)
    return node_hash(_mth(leaves, start, start + k), _mth(leaves, start + k, end))


def range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """MTH of leaves [start, end) from perfect-subtree hashes: O(log n) lookups."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return subtree(start, end)
    k = split(n)
    return node_hash(range_hash(subtree, start, start + k), range_hash(subtree, start + k, end))


def inclusion_proof(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            path.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            path.append(range_hash(subtree, start, start + k))
            start = start + k
    return list(reversed(path))


def consistency_proof(subtree: SubtreeHash, first: int, second: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    if first == second:
        return []
    return _subproof(subtree, first, 0, second, True)


def _subproof(subtree: SubtreeHash, m: int, start: int, end: int, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [range_hash(subtree, start, end)]
    k = split(n)
    if m <= k:
        right = range_hash(subtree, start + k, end)
        return [*_subproof(subtree, m, start, start + k, complete), right]
    left = range_hash(subtree, start, start + k)
    return [*_subproof(subtree, m - k, start + k, end, False), left]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does the leaf hash sit at `index` of the tree with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of size `second` an extension of the one of `first`?"""
    if first == second:
        return first_root == second_root and not proof
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def perfect_nodes_completed(
    index: int, leaf: bytes, stored: SubtreeHash
) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees a new leaf at `index` completes, as (level, position, hash):
    the leaf itself at level 0, and each parent whose right edge it is. O(log n)."""
    nodes = [(0, index, leaf)]
    level, position, current = 0, index, leaf
    while position & 1:
        width = 1 << level
        left = stored((position - 1) * width, position * width)
        current = node_hash(left, current)
        level += 1
        position >>= 1
        nodes.append((level, position, current))
    return nodes
