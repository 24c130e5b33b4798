"""A set of 16-byte digests that stays small: the members sorted in two arrays of 64-bit
halves, and the recent additions (at most a fifth of all) in a set merged into them now
and then. 16 bytes a member in the arrays, about 90 in the set: some 16 to 30 bytes a
member on average, up to about 50 while a merge runs, instead of a Python object's
hundred or more. The partner producer keeps in it which rows of an export earlier runs
sent (the journal) and which registrations a run sent: for an export of 10^6 rows some
tens of MB, not hundreds. Exact: the whole digest is kept, so no two members are ever
taken for one."""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable

SIZE = 16
_LOW = (1 << 64) - 1


class DigestSet:
    def __init__(self, members: Iterable[bytes] = (), *, merge_at: int = 65_536) -> None:
        self._high = array("Q")  # sorted by (high, low)
        self._low = array("Q")
        self._recent: set[int] = set()
        self._merge_at = merge_at
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return len(self._high) + len(self._recent)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes) or len(digest) != SIZE:
            return False
        return self._has(int.from_bytes(digest, "big"))

    def _has(self, value: int) -> bool:
        if value in self._recent:
            return True
        high, low = value >> 64, value & _LOW
        at = bisect_left(self._high, high)
        while at < len(self._high) and self._high[at] == high:
            if self._low[at] == low:
                return True
            at += 1
        return False

    def add(self, digest: bytes) -> None:
        if len(digest) != SIZE:
            raise ValueError(f"a digest is {SIZE} bytes, not {len(digest)}")
        value = int.from_bytes(digest, "big")
        if self._has(value):
            return
        self._recent.add(value)
        # The recent ones wait for a merge while they are a small share of all: merges
        # get rarer as the set grows, so adding n members costs O(n log n) in all.
        if len(self._recent) >= max(self._merge_at, len(self._high) // 4):
            self._merge()

    def _merge(self) -> None:
        """The recent additions into the sorted arrays, in one pass over both."""
        kept = ((h << 64) | lo for h, lo in zip(self._high, self._low, strict=True))
        high, low = array("Q"), array("Q")
        for value in heapq.merge(kept, sorted(self._recent)):
            high.append(value >> 64)
            low.append(value & _LOW)
        self._high, self._low = high, low
        self._recent = set()
