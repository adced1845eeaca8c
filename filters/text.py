"""Text statistics shared by the rule filters (Gopher, C4, FineWeb).

The three rule sets all look at the same lines and words. `text_stats(text)` splits a text once
and caches the result for the last few texts (for every text of a batch inside
`filters.base.batch_caches()`), so running gopher, c4 and fineweb on one document splits it once
instead of three times. The cache is keyed by the string itself: a hit costs one
(cached) hash and an identity check when the filters see the same `doc.text` object.
"""
from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np
from numba import njit

from filters.base import batch_cache
from filters.hashing import WORD_BASE, mix64, table_size

# Sentence-final marks across scripts: Latin, CJK fullwidth, Devanagari danda, Arabic/Urdu,
# Ethiopic, Myanmar, Khmer, Armenian, Greek question mark, ellipsis, closing quotes.
TERMINAL_PUNCTUATION: tuple[str, ...] = (
    ".", "!", "?", '"', "'", "\u2026", "\u201d", "\u2019", "\u00bb",
    "\u3002", "\uff01", "\uff1f", "\uff0e", "\u0964", "\u0965", "\u061f", "\u06d4",
    "\u1362", "\u1367", "\u104b", "\u17d4", "\u0589", "\u037e",
)

# Words are found in one compiled pass over the text's code points: no Python object per word.
# The tables say which code points are whitespace (exactly str.split's set) and which are letters
# (str.isalpha); code points past the letter table (planes 3+, rare) count as neither.
_LETTER_TABLE_SIZE = 0x30000


@lru_cache(maxsize=1)
def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(is_space, is_letter) lookup tables by code point, built once per process (~25 ms)."""
    chars = "".join(map(chr, range(_LETTER_TABLE_SIZE)))
    is_space = np.fromiter(map(str.isspace, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_letter = np.fromiter(map(str.isalpha, chars), dtype=bool, count=_LETTER_TABLE_SIZE)
    is_space[-1] = is_letter[-1] = False  # the slot that clipped (larger) code points land on
    return is_space, is_letter


def code_points(text: str) -> np.ndarray:
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
    lengths = np.empty(len(codes) // 2 + 1, np.int64)  # room for every word; only the pages
    hashes = np.empty(len(codes) // 2 + 1, np.uint64)  # written to are ever touched
    no_letter = 0
    word = 0
    i, n = 0, len(codes)
    while i < n:
        if is_space[min(codes[i], last)]:
            i += 1
            continue
        start, h, power, letter = i, np.uint64(0), np.uint64(1), False
        while i < n and not is_space[min(codes[i], last)]:  # `_span_hash`, fused into the scan (~25% faster)
            letter |= is_letter[min(codes[i], last)]
            h += (np.uint64(codes[i]) + np.uint64(1)) * power
            power *= WORD_BASE
            i += 1
        lengths[word], hashes[word] = i - start, mix64(h)
        no_letter += not letter
        word += 1
    return lengths[:word].copy(), hashes[:word].copy(), no_letter


@njit(cache=True, nogil=True)
def _span_hash(codes: np.ndarray, start: int, end: int) -> np.uint64:
    """The word hash of codes[start:end] (equal spans, equal hashes)."""
    h, power = np.uint64(0), np.uint64(1)
    for i in range(start, end):
        h += (np.uint64(codes[i]) + np.uint64(1)) * power
        power *= WORD_BASE
    return mix64(h)


@njit(cache=True, nogil=True)
def _line_arrays(codes: np.ndarray, is_space: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The stripped non-empty lines (text split at "\n") and the paragraphs, in one pass.

    Returns (lines, paragraphs, ellipsis_lines, counts): `lines` holds each line's (start, end,
    first code point, last code point), `paragraphs` each paragraph's (start, end); a paragraph
    is a run of non-empty lines between lines that are empty or only whitespace, stripped, as
    `re.split(r"\n[^\S\n]*\n\s*")` cuts them; `ellipsis_lines` flags the lines ending in "..."
    or U+2026; counts = ("#", "..." + U+2026 as str.count counts them, "\n").
    """
    last = len(is_space) - 1
    n = len(codes)
    lines = np.empty((n // 2 + 1, 4), np.int64)
    ellipsis_lines = np.zeros(n // 2 + 1, np.bool_)
    paragraphs = np.empty((n // 2 + 1, 2), np.int64)
    count = n_paragraphs = 0
    hash_marks = ellipses = dots = newlines = 0
    paragraph_start = paragraph_end = -1
    i = 0
    while i <= n:
        line_start = i
        while i < n:  # to the end of the line, counting the marks
            code = codes[i]
            if code < 47:
                if code == 10:
                    break
                if code == 46:  # ".": every third of a run of dots ends a "..."
                    dots = dots + 1 if i > line_start and codes[i - 1] == 46 else 1
                    if dots == 3:
                        ellipses += 1
                        dots = 0
                elif code == 35:
                    hash_marks += 1
            elif code == 0x2026:
                ellipses += 1
            i += 1
        start, end = line_start, i
        newlines += i < n
        i += 1
        while start < end and is_space[min(codes[start], last)]:
            start += 1
        while end > start and is_space[min(codes[end - 1], last)]:
            end -= 1
        if start == end:  # empty or only whitespace: ends a paragraph
            if paragraph_start >= 0:
                paragraphs[n_paragraphs, 0], paragraphs[n_paragraphs, 1] = paragraph_start, paragraph_end
                n_paragraphs += 1
                paragraph_start = -1
            continue
        lines[count, 0], lines[count, 1], lines[count, 2], lines[count, 3] = start, end, codes[start], codes[end - 1]
        ellipsis_lines[count] = codes[end - 1] == 0x2026 or (
            end - start >= 3 and codes[end - 1] == 46 and codes[end - 2] == 46 and codes[end - 3] == 46)
        count += 1
        if paragraph_start < 0:
            paragraph_start = start
        paragraph_end = end
    if paragraph_start >= 0:
        paragraphs[n_paragraphs, 0], paragraphs[n_paragraphs, 1] = paragraph_start, paragraph_end
        n_paragraphs += 1
    counts = np.array([hash_marks, ellipses, newlines], np.int64)
    return lines[:count].copy(), paragraphs[:n_paragraphs].copy(), ellipsis_lines[:count].copy(), counts


@njit(cache=True, nogil=True)
def _duplicates(codes: np.ndarray, spans: np.ndarray) -> tuple[int, int]:
    """(how many of the spans codes[start:end] repeat an earlier one, their total length).

    Only spans whose length another span shares can repeat: just those are hashed (the word
    hash) and counted in an open-addressing table of (hash, length)."""
    n = len(spans)
    lengths = spans[:, 1] - spans[:, 0]
    order = np.argsort(lengths)
    size = table_size(n)
    mask = np.uint64(size - 1)
    keys = np.empty(size, np.uint64)
    key_lengths = np.full(size, -1, np.int64)
    repeats = repeated_chars = 0
    for k in range(n):
        span = order[k]
        length = lengths[span]
        if not ((k > 0 and lengths[order[k - 1]] == length) or (k + 1 < n and lengths[order[k + 1]] == length)):
            continue  # no other span this long
        h = _span_hash(codes, spans[span, 0], spans[span, 1])
        slot = h & mask
        while key_lengths[slot] != -1 and not (keys[slot] == h and key_lengths[slot] == length):
            slot = (slot + np.uint64(1)) & mask
        if key_lengths[slot] == -1:
            keys[slot], key_lengths[slot] = h, length
        else:
            repeats += 1
            repeated_chars += length
    return repeats, repeated_chars


@njit(cache=True, nogil=True)
def _count_in(values: np.ndarray, members: np.ndarray) -> int:
    """How many of `values` are among `members` (a few code points)."""
    found = 0
    for value in values:
        for member in members:
            if value == member:
                found += 1
                break
    return found


class TextStats:
    """Lazily computed views of one text; each view is computed at most once.

    Lines are the stripped, non-empty lines of `text.split("\n")`; paragraphs are the runs of
    lines between blank ones (see `_line_arrays`); words are the whitespace tokens of
    `str.split()` (as in dolma's Gopher tagger: punctuation stays attached, which changes mean
    word lengths by ~0.2). All are found in compiled passes over the code points and held as
    numpy arrays of positions, lengths and hashes rather than Python strings; equal lines
    (paragraphs, words) have equal hashes, and different ones practically never collide.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def codes(self) -> np.ndarray:
        return code_points(self.text)

    @cached_property
    def _words(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(lengths, hashes, number without a letter) of the whitespace tokens."""
        return _word_arrays(self.codes, *char_tables())

    @cached_property
    def _lines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _line_arrays(self.codes, char_tables()[0])

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
    def lines(self) -> list[str]:
        """The lines as strings (for rules that match patterns inside lines)."""
        return [self.text[start:end] for start, end in self.line_spans.spans.tolist()]

    @cached_property
    def line_spans(self) -> "Spans":
        return Spans(self.codes, self._lines[0][:, :2])

    def lines_starting_with(self, chars: tuple[str, ...]) -> int:
        """Lines whose first character is one of `chars` (single characters)."""
        return _count_in(self._lines[0][:, 2], _code_points(chars))

    def lines_ending_with(self, chars: tuple[str, ...]) -> int:
        """Lines whose last character is one of `chars` (single characters)."""
        return _count_in(self._lines[0][:, 3], _code_points(chars))

    @cached_property
    def lines_ending_in_punctuation(self) -> int:
        return self.lines_ending_with(TERMINAL_PUNCTUATION)

    @cached_property
    def ellipsis_lines(self) -> int:
        """Lines ending in "..." or U+2026."""
        return int(self._lines[2].sum())

    @cached_property
    def paragraph_spans(self) -> "Spans":
        return Spans(self.codes, self._lines[1])

    @property
    def hash_marks(self) -> int:
        """text.count("#")."""
        return int(self._lines[3][0])

    @property
    def ellipses(self) -> int:
        """text.count("...") + text.count("\u2026")."""
        return int(self._lines[3][1])

    @property
    def newlines(self) -> int:
        """text.count("\n")."""
        return int(self._lines[3][2])


class Spans:
    """Pieces of a text (its lines or its paragraphs) as (start, end) rows over its code points."""

    def __init__(self, codes: np.ndarray, spans: np.ndarray) -> None:
        self.codes, self.spans = codes, spans

    @property
    def count(self) -> int:
        return len(self.spans)

    @cached_property
    def lengths(self) -> np.ndarray:
        return self.spans[:, 1] - self.spans[:, 0]

    @cached_property
    def chars(self) -> int:
        return int(self.lengths.sum())

    @cached_property
    def duplicates(self) -> tuple[int, int]:
        """(number of pieces that repeat an earlier one, characters in them)."""
        return _duplicates(self.codes, self.spans)


@lru_cache(maxsize=16)
def _code_points(chars: tuple[str, ...]) -> np.ndarray:
    if any(len(c) != 1 for c in chars):
        raise ValueError(f"single characters expected, got {chars}")
    return np.array([ord(c) for c in chars], dtype=np.int64)


@batch_cache
def text_stats(text: str) -> TextStats:
    """The shared `TextStats` of `text` (cached for the texts of a batch, see `filters.base`)."""
    return TextStats(text)


def safe_ratio(numerator: float, denominator: float, empty: float = 0.0) -> float:
    """numerator / denominator as a Python float, `empty` when there is nothing to divide by."""
    return float(numerator) / denominator if denominator else empty
