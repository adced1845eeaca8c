"""The hash constants every module shares, and the one vectorized 64-bit mixer. Their values are
fixed: shipped models' feature hashes, stored signatures and dedup keys depend on them."""
from __future__ import annotations

import numpy as np

GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: splitmix64's increment, the n-gram base
GOLDEN32 = 0x9E3779B1  # 2^32 / golden ratio: multiplicative hashing of table slots
# A dense odd 64-bit base for polynomial word hashes (a sparse base such as FNV's 2^40+0x1b3 makes
# (B - 0x1b3)^2 = 0 mod 2^64, i.e. cheap collisions).
WORD_BASE = np.uint64(0xD6E8FEB86659FD93)
MIX1, MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finalizer


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over uint64 arrays (wrapping): every input bit reaches every output bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * MIX1
        x = x ^ (x >> np.uint64(27))
        x = x * MIX2
        return x ^ (x >> np.uint64(31))
