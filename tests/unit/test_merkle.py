"""The audit log's Merkle tree (RFC 9162 hashing): every inclusion and consistency proof
for small trees verifies, and any change to a proof, a leaf or a root makes it fail."""

from __future__ import annotations

import hashlib

from services.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_nodes_completed,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(33)]


def stored(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    """Perfect-subtree lookups, as the database answers them."""

    def subtree(start: int, end: int) -> bytes:
        return root_of(leaves[start:end])

    return subtree


def test_hashing_is_domain_separated_as_in_rfc_9162() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root_of([]) == EMPTY_ROOT
    assert root_of(LEAVES[:1]) == LEAVES[0]
    three = root_of(LEAVES[:3])
    assert three == node_hash(node_hash(LEAVES[0], LEAVES[1]), LEAVES[2])


def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not() -> None:
    for size in range(1, len(LEAVES) + 1):
        root = root_of(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(stored(LEAVES), index, size)
            assert verify_inclusion(LEAVES[index], index, size, proof, root)
            assert len(proof) <= size.bit_length()
            other = (index + 1) % size
            if other != index:
                assert not verify_inclusion(LEAVES[other], index, size, proof, root)
            if proof:
                broken = [proof[0][::-1], *proof[1:]]
                assert not verify_inclusion(LEAVES[index], index, size, broken, root)


def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not() -> None:
    for second in range(1, len(LEAVES) + 1):
        for first in range(1, second + 1):
            proof = consistency_proof(stored(LEAVES), first, second)
            r1, r2 = root_of(LEAVES[:first]), root_of(LEAVES[:second])
            assert verify_consistency(first, second, r1, r2, proof)
            if first < second:
                rewritten = root_of([LEAVES[1], *LEAVES[1:first]]) if first > 1 else LEAVES[5]
                assert not verify_consistency(first, second, rewritten, r2, proof)


def test_appending_completes_the_perfect_subtrees_incrementally() -> None:
    nodes: dict[tuple[int, int], bytes] = {}

    def subtree(start: int, end: int) -> bytes:
        width = end - start
        return nodes[(width.bit_length() - 1, start // width)]

    for index, leaf in enumerate(LEAVES):
        for level, position, value in perfect_nodes_completed(index, leaf, subtree):
            nodes[(level, position)] = value
    assert nodes[(5, 0)] == root_of(LEAVES[:32])
    assert len(nodes) < 2 * len(LEAVES)
