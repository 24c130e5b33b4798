"""Burgerservicenummer checks, and synthetic BSNs for tests and the simulator."""

from __future__ import annotations

import random

# Synthetic BSNs are drawn only from 999900000-999999999, a block used for test persons,
# so a generated number is never a real person's.
SYNTHETIC_FIRST = 999_900_000
SYNTHETIC_LAST = 999_999_999


def is_valid_bsn(value: str) -> bool:
    """The elfproef: nine digits, weights 9..2 and -1, the sum divisible by 11, not 0."""
    if len(value) != 9 or not value.isdigit() or value == "000000000":
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(d) * w for d, w in zip(value, weights, strict=True)) % 11 == 0


def synthetic_bsns(count: int, rng: random.Random) -> list[str]:
    """`count` distinct elfproef-valid BSNs from the synthetic block."""
    valid = [str(n) for n in range(SYNTHETIC_FIRST, SYNTHETIC_LAST + 1) if is_valid_bsn(str(n))]
    if count > len(valid):
        raise ValueError(f"the synthetic block holds only {len(valid)} valid BSNs")
    return rng.sample(valid, count)
