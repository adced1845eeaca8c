"""Text statistics shared by the rule filters (Gopher, C4, FineWeb).

The three rule sets all look at the same lines and words. `text_stats(text)` splits a text once
and caches the result for the last few texts (for every text of a batch inside
`filters.base.batch_caches()`), so running gopher, c4 and fineweb on one document splits it once
instead of three times. The cache is keyed by the string itself: a hit costs one
(cached) hash and an identity check when the filters see the same `doc.text` object.
"""
from __future__ import annotations

import re
from functools import cached_property, lru_cache

import numpy as np
from numba import njit

from filters.base import batch_cache

# Sentence-final marks across scripts: Latin, CJK fullwidth, Devanagari danda, Arabic/Urdu,
# Ethiopic, Myanmar, Khmer, Armenian, Greek question mark, ellipsis, closing quotes.
TERMINAL_PUNCTUATION: tuple[str, ...] = (
    ".", "!", "?", '"', "'", "\u2026", "\u201d", "\u2019", "\u00bb",
    "\u3002", "\uff01", "\uff1f", "\uff0e", "\u0964", "\u0965", "\u061f", "\u06d4",
    "\u1362", "\u1367", "\u104b", "\u17d4", "\u0589", "\u037e",
)

ELLIPSES: tuple[str, ...] = ("...", "\u2026")

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")

# Words are found in one compiled pass over the text's code points: no Python object per word.
# The tables say which code points are whitespace (exactly str.split's set) and which are letters
# (str.isalpha); code points past the letter table (planes 3+, rare) count as neither.
_LETTER_TABLE_SIZE = 0x30000
# A dense odd 64-bit base B for the word hash (a sparse base such as FNV's 2^40+0x1b3 makes
# (B - 0x1b3)^2 = 0 mod 2^64, i.e. cheap collisions), then splitmix64's finalizer.
_HASH_BASE = np.uint64(0xD6E8FEB86659FD93)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@lru_cache(maxsize=1)
def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(is_space, is_letter) lookup tables by code point, built once per process (~25 ms)."""
    chars = "".join(map(chr, range(_LETTER_TABLE_SIZE)))
    is_space = np.fromiter(map(str.isspace, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_letter = np.fromiter(map(str.isalpha, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_space[-1] = is_letter[-1] = False  # the slot that clipped (larger) code points land on
    return is_space, is_letter


def _codes(text: str) -> np.ndarray:
    """The code points of `text` (lone surrogates included) as uint32."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@njit(cache=True, nogil=True)
def _word_arrays(codes: np.ndarray, is_space: np.ndarray, is_letter: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """(lengths, hashes, number without a letter) of the whitespace tokens, as `str.split()`
    finds them. A word's hash is sum((code point + 1) * B^i) over its characters at positions
    i = 0, 1, ..., then bit-mixed: equal words get equal hashes, different words practically
    never collide (checked against str.split() in the tests)."""
    last = len(is_space) - 1
    count = 0
    inside = False
    for code in codes:  # first pass: how many words (keeps scratch memory to the words)
        space = is_space[min(code, last)]
        count += inside and space
        inside = not space
    count += inside
    lengths = np.empty(count, np.int64)
    hashes = np.empty(count, np.uint64)
    no_letter = 0
    word = 0
    i, n = 0, len(codes)
    while i < n:
        if is_space[min(codes[i], last)]:
            i += 1
            continue
        start, h, power, letter = i, np.uint64(0), np.uint64(1), False
        while i < n and not is_space[min(codes[i], last)]:
            letter |= is_letter[min(codes[i], last)]
            h += (np.uint64(codes[i]) + np.uint64(1)) * power
            power *= _HASH_BASE
            i += 1
        h ^= h >> np.uint64(30)
        h *= _MIX1
        h ^= h >> np.uint64(27)
        h *= _MIX2
        h ^= h >> np.uint64(31)
        lengths[word], hashes[word] = i - start, h
        no_letter += not letter
        word += 1
    return lengths, hashes, no_letter


def duplicate_count_and_chars(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier item, and their total characters (first copies excluded)."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


class TextStats:
    """Lazily computed views of one text; each view is computed at most once.

    `lines` are the stripped, non-empty lines; words are the whitespace tokens of `str.split()`
    (as in dolma's Gopher tagger: punctuation stays attached, which changes mean word lengths by
    ~0.2), held as numpy arrays of lengths and hashes rather than Python strings.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def lines(self) -> list[str]:
        return [line for line in map(str.strip, self.text.split("\n")) if line]

    @cached_property
    def line_chars(self) -> int:
        return sum(map(len, self.lines))

    @cached_property
    def _words(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(lengths, hashes, number without a letter) of the whitespace tokens."""
        return _word_arrays(_codes(self.text), *_char_tables())

    @property
    def word_count(self) -> int:
        return len(self._words[0])

    @property
    def word_lengths(self) -> np.ndarray:
        """Length in characters of each whitespace token (int64)."""
        return self._words[0]

    @property
    def word_hashes(self) -> np.ndarray:
        """64-bit hash of each whitespace token: equal tokens have equal hashes (uint64)."""
        return self._words[1]

    @property
    def no_letter_words(self) -> int:
        """Whitespace tokens without any letter (numbers, punctuation, symbols)."""
        return self._words[2]

    @cached_property
    def word_chars(self) -> int:
        return int(self.word_lengths.sum())

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p for p in map(str.strip, _PARAGRAPH_BREAK.split(self.text)) if p]

    @cached_property
    def duplicate_lines(self) -> tuple[int, int]:
        """(number of repeated lines, characters in them), first occurrences excluded."""
        return duplicate_count_and_chars(self.lines)

    @cached_property
    def lines_ending_in_punctuation(self) -> int:
        return sum(1 for line in self.lines if line.endswith(TERMINAL_PUNCTUATION))


@batch_cache
def text_stats(text: str) -> TextStats:
    """The shared `TextStats` of `text` (cached for the texts of a batch, see `filters.base`)."""
    return TextStats(text)


def safe_ratio(numerator: float, denominator: float, empty: float = 0.0) -> float:
    """numerator / denominator as a Python float, `empty` when there is nothing to divide by."""
    return float(numerator) / denominator if denominator else empty
