"""Text statistics shared by the rule filters (Gopher, C4, FineWeb).

The three rule sets all look at the same lines and words. `text_stats(text)` splits a text once
and caches the result for the last few texts, so running gopher, c4 and fineweb on one document
splits it once instead of three times. The cache is keyed by the string itself: a hit costs one
(cached) hash and an identity check when the filters see the same `doc.text` object.
"""
from __future__ import annotations

import re
from functools import cached_property, lru_cache
from itertools import filterfalse

import numpy as np

# Sentence-final marks across scripts: Latin, CJK fullwidth, Devanagari danda, Arabic/Urdu,
# Ethiopic, Myanmar, Khmer, Armenian, Greek question mark, ellipsis, closing quotes.
TERMINAL_PUNCTUATION: tuple[str, ...] = (
    ".", "!", "?", '"', "'", "\u2026", "\u201d", "\u2019", "\u00bb",
    "\u3002", "\uff01", "\uff1f", "\uff0e", "\u0964", "\u0965", "\u061f", "\u06d4",
    "\u1362", "\u1367", "\u104b", "\u17d4", "\u0589", "\u037e",
)

ELLIPSES: tuple[str, ...] = ("...", "\u2026")

_LETTER = re.compile(r"[^\W\d_]")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


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

    `lines` are the stripped, non-empty lines; `words` the whitespace tokens (as in dolma's
    Gopher tagger: punctuation stays attached, which is cheap and changes word lengths by ~0.2).
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
    def words(self) -> list[str]:
        return self.text.split()

    @cached_property
    def vocab(self) -> dict[str, int]:
        """Each distinct word -> index of its first occurrence (fills `word_ids` too)."""
        return self._vocab_and_ids[0]

    @cached_property
    def word_ids(self) -> np.ndarray:
        """Per word, the index of its first occurrence: equal words get equal ids (uint64)."""
        return self._vocab_and_ids[1]

    @cached_property
    def _vocab_and_ids(self) -> tuple[dict[str, int], np.ndarray]:
        vocab: dict[str, int] = {}
        count = len(self.words)
        ids = np.fromiter(map(vocab.setdefault, self.words, range(count)), dtype=np.uint64,
                          count=count)
        return vocab, ids

    @cached_property
    def word_chars(self) -> int:
        return sum(map(len, self.words))

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p for p in map(str.strip, _PARAGRAPH_BREAK.split(self.text)) if p]

    @cached_property
    def duplicate_lines(self) -> tuple[int, int]:
        """(number of repeated lines, characters in them), first occurrences excluded."""
        return duplicate_count_and_chars(self.lines)

    @cached_property
    def no_letter_words(self) -> int:
        """Whitespace tokens without any letter (numbers, punctuation, symbols)."""
        # Most words are all letters (str.isalpha, fast); only the rest go through the regex.
        return list(map(_LETTER.search, filterfalse(str.isalpha, self.words))).count(None)

    @cached_property
    def lines_ending_in_punctuation(self) -> int:
        return sum(1 for line in self.lines if line.endswith(TERMINAL_PUNCTUATION))


@lru_cache(maxsize=8)
def text_stats(text: str) -> TextStats:
    """The shared `TextStats` of `text` (cached for the last few distinct texts)."""
    return TextStats(text)


def safe_ratio(numerator: float, denominator: float, empty: float = 0.0) -> float:
    """numerator / denominator as a Python float, `empty` when there is nothing to divide by."""
    return float(numerator) / denominator if denominator else empty
