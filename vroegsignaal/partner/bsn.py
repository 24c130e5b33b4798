"""Burgerservicenummer checks, and synthetic BSNs for tests and the simulator."""

from __future__ import annotations

import random

from shared.contracts import is_valid_bsn

__all__ = ["SYNTHETIC_FIRST", "SYNTHETIC_LAST", "is_valid_bsn", "synthetic_bsns"]

# Synthetic BSNs are drawn only from 999900000-999999999, a block used for test persons,
# so a generated number is never a real person's.
SYNTHETIC_FIRST = 999_900_000
SYNTHETIC_LAST = 999_999_999


def synthetic_bsns(count: int, rng: random.Random) -> list[str]:
    """`count` distinct elfproef-valid BSNs from the synthetic block."""
    valid = [str(n) for n in range(SYNTHETIC_FIRST, SYNTHETIC_LAST + 1) if is_valid_bsn(str(n))]
    if count > len(valid):
        raise ValueError(f"the synthetic block holds only {len(valid)} valid BSNs")
    return rng.sample(valid, count)
