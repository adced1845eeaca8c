"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Quality rules: 50 to 100,000 words, mean word length 3 to 10 characters, at most 0.1 "#" and
ellipses per word, at most 90% of lines starting with a bullet, at most 30% of lines ending in an
ellipsis, at least 80% of words with a letter, and at least two of the English stop words
(the, be, to, of, and, that, have, with).

Repetition rules (table A1): duplicate lines <= 30% (by count) and <= 20% (by characters), the
same for paragraphs, the most frequent 2/3/4-gram covering <= 20/18/16% of the characters, and
duplicated 5..10-grams covering <= 15/14/13/12/11/10% of the characters.

Words are whitespace tokens (see `filters.text.TextStats`). Character fractions count each word's
characters once even when n-grams overlap. N-grams are compared by a 64-bit polynomial hash of
word hashes, computed with numpy: one sort per n instead of Python tuples per position.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Mapping

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from filters.base import DocFilter, Document, FilterParams
from filters.text import ELLIPSES, TextStats, duplicate_count_and_chars, safe_ratio, text_stats

STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS: tuple[str, ...] = ("\u2022", "\u25cf", "\u25cb", "\u25aa", "\u25e6", "\u2023", "\u2043",
                            "\u2013", "\u2014", "-", "*", "\u00b7")
TOP_NGRAM_SIZES: tuple[int, ...] = (2, 3, 4)
DUP_NGRAM_SIZES: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

_BASE = np.uint64(0xA0761D6478BD642F)  # dense odd base of the polynomial n-gram hash


def _coverage_chars(starts: np.ndarray, n: int, word_lengths: np.ndarray) -> int:
    """Characters of the words covered by n-grams starting at the boolean mask `starts`."""
    delta = np.zeros(len(word_lengths) + 1, dtype=np.int32)
    delta[: len(starts)] += starts
    delta[n: n + len(starts)] -= starts
    covered = np.cumsum(delta[:-1]) > 0
    return int(word_lengths[covered].sum())


def _repeated_mask(hashes: np.ndarray, order: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each position: does its hash occur elsewhere; plus the sort order and `same_as_next`."""
    if order is None:
        order = np.argsort(hashes, kind="stable")  # equal hashes keep text order
    ordered = hashes[order]
    same_as_next = ordered[1:] == ordered[:-1]
    repeated_sorted = np.zeros(len(hashes), dtype=bool)
    repeated_sorted[1:] |= same_as_next
    repeated_sorted[:-1] |= same_as_next
    repeated = np.empty_like(repeated_sorted)
    repeated[order] = repeated_sorted
    return repeated, order, same_as_next


def ngram_char_fractions(stats: TextStats) -> tuple[dict[int, float], dict[int, float]]:
    """Gopher n-gram repetition: ({n: top n-gram char fraction}, {n: duplicate n-gram char fraction}).

    The top n-gram is the most frequent one (ties: more characters, then first in the text); its
    fraction is 0 when no n-gram occurs twice. A duplicate (n+1)-gram is made of two
    duplicate n-grams, so once no n-gram repeats the larger n are 0 without sorting.
    """
    top = {n: 0.0 for n in TOP_NGRAM_SIZES}
    dup = {n: 0.0 for n in DUP_NGRAM_SIZES}
    m = stats.word_count
    if m < 2:
        return top, dup
    lengths = stats.word_lengths
    tokens = stats.word_hashes
    repeated = _repeated_mask(tokens, stats.word_hash_order)[0]
    if not repeated.any():  # no word repeats, so no n-gram repeats
        return top, dup
    total_chars = stats.word_chars
    hashes = tokens
    prefix_chars = np.concatenate(([0], np.cumsum(lengths)))
    for n in range(2, DUP_NGRAM_SIZES[-1] + 1):
        if n > m:
            break
        hashes = hashes[:-1] * _BASE + tokens[n - 1:]
        # An n-gram can repeat only where the two (n-1)-grams inside it repeat: sort just those.
        candidates = np.flatnonzero(repeated[:-1] & repeated[1:])
        if len(candidates) < 2:
            break
        repeated_sub, order, same_as_next = _repeated_mask(hashes[candidates])
        if not repeated_sub.any():
            break
        repeated = np.zeros(len(hashes), dtype=bool)
        repeated[candidates[repeated_sub]] = True
        if n in top:
            group_starts = np.flatnonzero(np.concatenate(([True], ~same_as_next)))
            sizes = np.diff(np.append(group_starts, len(order)))
            best = sizes.max()
            best_groups = group_starts[sizes == best]
            # ties: the n-gram with more characters, then the one that occurs first
            first_pos = candidates[order[best_groups]]
            ngram_chars = prefix_chars[first_pos + n] - prefix_chars[first_pos]
            longest = ngram_chars == ngram_chars.max()
            pick = best_groups[longest][int(np.argmin(first_pos[longest]))]
            starts = np.zeros(len(hashes), dtype=bool)
            starts[candidates[order[pick: pick + best]]] = True
            top[n] = _coverage_chars(starts, n, lengths) / total_chars
        if n in dup:
            dup[n] = _coverage_chars(repeated, n, lengths) / total_chars
    return top, dup


@lru_cache(maxsize=8)
def _stop_word_hashes(stop_words: tuple[str, ...]) -> np.ndarray:
    """Word hashes of each stop word in lower, Title and UPPER case: shape (len(stop_words), 3)."""
    variants = [v for w in stop_words for v in (w.lower(), w.capitalize(), w.upper())]
    return TextStats(" ".join(variants)).word_hashes.reshape(len(stop_words), 3)


def _stop_word_count(stats: TextStats, stop_words: tuple[str, ...]) -> int:
    """How many distinct stop words occur (as a whole token, in lower, Title or UPPER case)."""
    if not stop_words or stats.word_count == 0:
        return 0
    variants = _stop_word_hashes(stop_words)
    ordered = stats.word_hashes[stats.word_hash_order]
    found = np.minimum(np.searchsorted(ordered, variants), len(ordered) - 1)
    return int((ordered[found] == variants).any(axis=1).sum())


def gopher_signals(text: str, stop_words: tuple[str, ...] = STOP_WORDS) -> dict[str, Any]:
    """All Gopher signals of `text`, keyed by their `gopher_*` column names."""
    stats = text_stats(text)
    lines, paragraphs = stats.lines, stats.paragraphs
    n_words, n_lines = stats.word_count, len(lines)
    dup_lines, dup_line_chars = stats.duplicate_lines
    dup_paras, dup_para_chars = duplicate_count_and_chars(paragraphs)
    top, dup = ngram_char_fractions(stats)
    signals: dict[str, Any] = {
        "gopher_word_count": n_words,
        "gopher_mean_word_length": safe_ratio(stats.word_chars, n_words),
        "gopher_hash_word_ratio": safe_ratio(text.count("#"), n_words),
        "gopher_ellipsis_word_ratio": safe_ratio(text.count("...") + text.count("\u2026"), n_words),
        "gopher_bullet_lines_frac": safe_ratio(sum(1 for ln in lines if ln.startswith(BULLETS)), n_lines),
        "gopher_ellipsis_lines_frac": safe_ratio(sum(1 for ln in lines if ln.endswith(ELLIPSES)), n_lines),
        "gopher_alpha_words_frac": safe_ratio(n_words - stats.no_letter_words, n_words),
        "gopher_stop_words": _stop_word_count(stats, stop_words),
        "gopher_dup_lines_frac": safe_ratio(dup_lines, n_lines),
        "gopher_dup_line_chars_frac": safe_ratio(dup_line_chars, stats.line_chars),
        "gopher_dup_paragraphs_frac": safe_ratio(dup_paras, len(paragraphs)),
        "gopher_dup_paragraph_chars_frac": safe_ratio(dup_para_chars, sum(map(len, paragraphs))),
    }
    signals.update({f"gopher_top_{n}gram_chars_frac": top[n] for n in TOP_NGRAM_SIZES})
    signals.update({f"gopher_dup_{n}gram_chars_frac": dup[n] for n in DUP_NGRAM_SIZES})
    return signals


_INT_SIGNALS = ("gopher_word_count", "gopher_stop_words")


class GopherFilter(DocFilter):
    """Gopher quality + repetition rules; `decide` names the first failing rule, "gopher:<rule>"."""

    name: ClassVar[str] = "gopher"

    class Params(FilterParams):
        min_words: int = 50
        max_words: int = 100_000
        min_mean_word_length: float = 3.0
        max_mean_word_length: float = 10.0
        max_symbol_word_ratio: float = Field(0.1, description="'#' per word and ellipses per word")
        max_bullet_lines_frac: float = 0.9
        max_ellipsis_lines_frac: float = 0.3
        min_alpha_words_frac: float = 0.8
        stop_words: list[str] = Field(default_factory=lambda: list(STOP_WORDS),
                                      description="words counted by the stop-word rule (lower case)")
        min_stop_words: int = 2
        max_dup_lines_frac: float = 0.3
        max_dup_paragraphs_frac: float = 0.3
        max_dup_line_chars_frac: float = 0.2
        max_dup_paragraph_chars_frac: float = 0.2
        max_top_ngram_chars_frac: dict[int, float] = Field(
            default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
        max_dup_ngram_chars_frac: dict[int, float] = Field(
            default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})

        @field_validator("stop_words")
        @classmethod
        def _single_tokens(cls, value: list[str]) -> list[str]:
            bad = [w for w in value if len(w.split()) != 1]
            if bad:
                raise ValueError(f"stop words must be single words without spaces, got {bad}")
            return value

        @field_validator("max_top_ngram_chars_frac")
        @classmethod
        def _top_sizes(cls, value: dict[int, float]) -> dict[int, float]:
            return _check_sizes(value, TOP_NGRAM_SIZES)

        @field_validator("max_dup_ngram_chars_frac")
        @classmethod
        def _dup_sizes(cls, value: dict[int, float]) -> dict[int, float]:
            return _check_sizes(value, DUP_NGRAM_SIZES)

    def signal_schema(self) -> list[pa.Field]:
        names = gopher_signals("").keys()
        return [pa.field(n, pa.int32() if n in _INT_SIGNALS else pa.float64()) for n in names]

    def annotate(self, doc: Document) -> None:
        doc.signals.update(gopher_signals(doc.text, tuple(self.params.stop_words)))

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        p = self.params
        s = signals
        checks: list[tuple[str, bool]] = [
            ("word_count", p.min_words <= s["gopher_word_count"] <= p.max_words),
            ("mean_word_length",
             p.min_mean_word_length <= s["gopher_mean_word_length"] <= p.max_mean_word_length),
            ("hash_ratio", s["gopher_hash_word_ratio"] <= p.max_symbol_word_ratio),
            ("ellipsis_ratio", s["gopher_ellipsis_word_ratio"] <= p.max_symbol_word_ratio),
            ("bullet_lines", s["gopher_bullet_lines_frac"] <= p.max_bullet_lines_frac),
            ("ellipsis_lines", s["gopher_ellipsis_lines_frac"] <= p.max_ellipsis_lines_frac),
            ("alpha_words", s["gopher_alpha_words_frac"] >= p.min_alpha_words_frac),
            ("stop_words", s["gopher_stop_words"] >= p.min_stop_words),
            ("dup_lines", s["gopher_dup_lines_frac"] <= p.max_dup_lines_frac),
            ("dup_paragraphs", s["gopher_dup_paragraphs_frac"] <= p.max_dup_paragraphs_frac),
            ("dup_line_chars", s["gopher_dup_line_chars_frac"] <= p.max_dup_line_chars_frac),
            ("dup_paragraph_chars",
             s["gopher_dup_paragraph_chars_frac"] <= p.max_dup_paragraph_chars_frac),
        ]
        checks += [(f"top_{n}gram", s[f"gopher_top_{n}gram_chars_frac"] <= limit)
                   for n, limit in sorted(p.max_top_ngram_chars_frac.items())]
        checks += [(f"dup_{n}gram", s[f"gopher_dup_{n}gram_chars_frac"] <= limit)
                   for n, limit in sorted(p.max_dup_ngram_chars_frac.items())]
        for rule, passed in checks:
            if not passed:
                return f"gopher:{rule}"
        return None


def _check_sizes(value: dict[int, float], allowed: tuple[int, ...]) -> dict[int, float]:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"n-gram sizes {unknown} not computed; use a subset of {list(allowed)}")
    return value


_DEFAULT_FILTER = GopherFilter()


def gopher_quality_filter(text: str) -> bool:
    """True when `text` passes every Gopher quality and repetition rule at the paper's thresholds."""
    return _DEFAULT_FILTER.decide(gopher_signals(text)) is None
