"""The compact set the partner producer keeps its journal and sent registrations in: the
same answers as a Python set, across its merges, for members and strangers alike."""

from __future__ import annotations

import random

import pytest

from vroegsignaal.partner.digests import DigestSet


def test_it_answers_as_a_set_does_across_merges() -> None:
    rng = random.Random(7)
    members = [rng.randbytes(16) for _ in range(5000)]
    # Members that share their first half, the half the arrays are searched by.
    twins = [members[0][:8] + rng.randbytes(8) for _ in range(20)]
    strangers = [rng.randbytes(16) for _ in range(5000)] + [members[1][:8] + bytes(8)]
    digests = DigestSet(merge_at=64)  # many merges on the way
    for n, member in enumerate(members + twins):
        digests.add(member)
        digests.add((members + twins)[n // 2])  # again: still once
        if n % 500 == 0:
            assert all(m in digests for m in (members + twins)[: n + 1])
    assert len(digests) == len(members) + len(twins)
    assert all(m in digests for m in members + twins)
    assert not any(s in digests for s in strangers)
    for edge in (bytes(16), b"\xff" * 16):  # the smallest and largest digests
        assert edge not in digests
        digests.add(edge)
        assert edge in digests


def test_only_digests_of_its_size_are_members() -> None:
    digests = DigestSet([b"a" * 16])
    assert b"a" * 16 in digests
    assert b"a" * 15 not in digests and "a" * 16 not in digests
    with pytest.raises(ValueError, match="a digest is 16 bytes, not 8"):
        digests.add(b"b" * 8)
