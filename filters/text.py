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

# Words are found with numpy on the text's code points: no Python object per word. The tables say
# which code points are whitespace (exactly str.split's set) and which are letters (str.isalpha);
# code points past the letter table (planes 3+, rare) count as neither.
_LETTER_TABLE_SIZE = 0x30000
# Character weights: powers of a dense odd 64-bit base B (a sparse base such as FNV's 2^40+0x1b3
# makes (B - 0x1b3)^2 = 0 mod 2^64, i.e. cheap collisions) and of its inverse mod 2^64.
_HASH_BASE = 0xD6E8FEB86659FD93
_MIX_SHIFTS_AND_MULTIPLIERS = ((30, np.uint64(0xBF58476D1CE4E5B9)), (27, np.uint64(0x94D049BB133111EB)))


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(B^0..B^(count-1), B^0..B^-(count-1)) mod 2^64: the cached chunk-sized tables, or new
    ones for the rare longer chunk (a text with no whitespace for over a million characters)."""
    if count <= _POWER_TABLE_SIZE:
        return _chunk_powers()
    return _power_tables(count)


@lru_cache(maxsize=1)
def _chunk_powers() -> tuple[np.ndarray, np.ndarray]:
    return _power_tables(_POWER_TABLE_SIZE)


def _power_tables(count: int) -> tuple[np.ndarray, np.ndarray]:
    powers = np.full(count, _HASH_BASE, dtype=np.uint64)
    inverse = np.full(count, pow(_HASH_BASE, -1, 1 << 64), dtype=np.uint64)
    powers[0] = inverse[0] = 1
    return np.cumprod(powers), np.cumprod(inverse)


@lru_cache(maxsize=1)
def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(is_space, is_letter) lookup tables by code point, built once per process (~25 ms)."""
    chars = "".join(map(chr, range(_LETTER_TABLE_SIZE)))
    is_space = np.fromiter(map(str.isspace, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_letter = np.fromiter(map(str.isalpha, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_space[-1] = is_letter[-1] = False  # the slot that clipped (larger) code points land on
    return is_space, is_letter


_CHUNK_CHARS = 1 << 20
_POWER_TABLE_SIZE = _CHUNK_CHARS + (1 << 12)  # a chunk ends at the first whitespace after that
_WHITESPACE = re.compile(r"\s")


def _whitespace_chunks(text: str) -> list[str]:
    """`text` cut into pieces of about _CHUNK_CHARS, each cut at a whitespace character."""
    chunks = []
    start = 0
    while len(text) - start > _CHUNK_CHARS:
        cut = _WHITESPACE.search(text, start + _CHUNK_CHARS)
        if cut is None:
            break
        chunks.append(text[start:cut.start()])
        start = cut.start()
    chunks.append(text[start:] if start else text)
    return chunks


def _codes(text: str) -> np.ndarray:
    """The code points of `text` (lone surrogates included) as uint32."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _word_bounds(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the whitespace tokens, exactly as `str.split()` finds them."""
    in_word = ~_char_tables()[0].take(codes, mode="clip")
    edges = np.flatnonzero(np.diff(in_word.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    return edges[0::2], edges[1::2]  # a word starts and ends at alternate edges


def _word_arrays(text: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(lengths, hashes, number without a letter) of the whitespace tokens of `text`.

    A word's hash is sum((code point + 1) * B^i) over its characters at positions i (computed as
    prefix-sum differences over the chunk, rescaled by B^-start), then bit-mixed: equal words get
    equal hashes, different words practically never collide (checked against str.split() in the
    tests).
    """
    codes = _codes(text)
    starts, ends = _word_bounds(codes)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), 0
    letters_before = np.concatenate(([0], np.cumsum(_char_tables()[1].take(codes, mode="clip"),
                                                     dtype=np.int32)))
    no_letter = int(np.count_nonzero(letters_before[ends] == letters_before[starts]))
    powers, inverse = _powers(len(codes))
    weighted = codes.astype(np.uint64)
    weighted += np.uint64(1)
    weighted *= powers[: len(codes)]
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(weighted)))  # wraps mod 2^64
    return ends - starts, _mix64((prefix[ends] - prefix[starts]) * inverse[starts]), no_letter


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: makes the (linear) word sums look random, so that
    polynomial n-gram hashes over them do not inherit their structure."""
    for shift, multiplier in _MIX_SHIFTS_AND_MULTIPLIERS:
        values ^= values >> np.uint64(shift)
        values *= multiplier
    values ^= values >> np.uint64(31)
    return values


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
        """(lengths, hashes, number without a letter) of the whitespace tokens, computed in
        chunks of ~1M characters cut at whitespace so a 10 MB text needs ~100 MB of scratch."""
        parts = [_word_arrays(chunk) for chunk in _whitespace_chunks(self.text)]
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                sum(p[2] for p in parts))

    @cached_property
    def word_count(self) -> int:
        if "_words" in self.__dict__:
            return len(self._words[0])
        return sum(len(_word_bounds(_codes(chunk))[0]) for chunk in _whitespace_chunks(self.text))

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
    def word_hash_order(self) -> np.ndarray:
        """Stable argsort of `word_hashes`: equal words adjacent, each group in text order."""
        return np.argsort(self.word_hashes, kind="stable")

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
