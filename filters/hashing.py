"""The hash constants every module shares, and the one vectorized 64-bit mixer. Their values are
fixed: shipped models' feature hashes, stored signatures and dedup keys depend on them."""
from __future__ import annotations

from typing import Iterable

import numpy as np
from numba import njit

GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: splitmix64's increment; the MinHash shingle and band-key base
GOLDEN32 = 0x9E3779B1  # 2^32 / golden ratio: multiplicative hashing of table slots
# A dense odd 64-bit base for polynomial word hashes (a sparse base such as FNV's 2^40+0x1b3 makes
# (B - 0x1b3)^2 = 0 mod 2^64, i.e. cheap collisions).
WORD_BASE = np.uint64(0xD6E8FEB86659FD93)
NGRAM_BASE = np.uint64(0xA0761D6478BD642F)  # wyhash's first prime: the Gopher repetition n-gram hash base
MIX1, MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finalizer


@njit(cache=True, nogil=True, inline="always")
def mix64(x):
    """splitmix64's finalizer over a uint64 or a uint64 array (wrapping): every input bit reaches
    every output bit. Compiled, so compiled loops inline it and arrays need no overflow guard."""
    x = x ^ (x >> np.uint64(30))
    x = x * MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * MIX2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def mix64_short(x):
    """A one-multiply mixer over a uint64 or a uint64 array: the dedup normalizer's word hashes
    (and so the stored MinHash signatures) and the LSH band keys depend on its exact values."""
    x = x ^ (x >> np.uint64(31))
    x = x * MIX2
    return x ^ (x >> np.uint64(29))


@njit(cache=True, nogil=True)
def table_size(keys: int) -> int:
    """Slots for an open-addressing table of `keys` keys: the power of two >= 2 * keys (at least 4),
    so the load stays at most 1/2 and linear probes stay short; `slot & (size - 1)` wraps."""
    size = 4
    while size < 2 * keys:
        size *= 2
    return size


def place_keys(hashes: Iterable[int], size: int) -> np.ndarray:
    """Linear-probing placement of keys by hash into `size` slots (a power of two): slot -> the
    index of the key placed there, -1 where empty. Lookups probe from `hash & (size - 1)` the same way."""
    slots = np.full(size, -1, np.int32)
    mask = size - 1
    for index, key_hash in enumerate(hashes):
        slot = key_hash & mask
        while slots[slot] != -1:
            slot = (slot + 1) & mask
        slots[slot] = index
    return slots
