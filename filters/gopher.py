"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language Models", appendix A).

The paper, and Stanford CS336 after it, treat these as two filters, and so does Sieve:

- `gopher_quality_filter(text)` applies exactly the four quality rules that CS336 asks for: 50 to
  100,000 words, a mean word length of 3 to 10 characters, at most 30% of lines ending in an
  ellipsis ("..." or U+2026), and at least 80% of words with an alphabetic character.
- `gopher_repetition_filter(text)` applies the repetition rules of table A1: duplicate lines
  <= 30% (by count) and <= 20% (by characters), the same for paragraphs, the most frequent
  2/3/4-gram covering <= 20/18/16% of the characters, and duplicated 5..10-grams covering
  <= 15/14/13/12/11/10% of the characters.

In the pipeline they are the filters `gopher` (reasons `gopher:<rule>`) and `gopher_repetition`
(reasons `gopher_repetition:<rule>`). The paper's quality filter has three more rules: at most
0.1 "#" and ellipses per word, at most 90% of lines starting with a bullet, and at least two of
the English stop words (the, be, to, of, and, that, have, with). They are optional thresholds of
the `gopher` filter, off by default (None), so that the filter's defaults decide exactly like
`gopher_quality_filter`; their signals are always computed, so a run can switch them on later
with `pipeline.refilter`. The shipped configs (configs/sample.yaml, configs/cc.yaml) switch them
on at the paper's values, which together with `gopher_repetition` is the paper's full set.
(They stay in `gopher` rather than a third filter because in the paper they are quality rules:
one section, one reason prefix, for all of Gopher's quality filter.)

Words are whitespace tokens (see `filters.text.TextStats`), as in dolma's Gopher tagger. CS336
suggests (does not require) nltk's `word_tokenize`, which makes punctuation tokens of its own
(shorter mean word lengths, fewer words with a letter); the assignment's test cases decide as it
expects with whitespace tokens (tests/test_rules.py has inputs of the same kinds), which keep
the signals of stored runs and need no tokenizer model. Character fractions count each word's
characters once even when n-grams overlap. N-grams are compared by a 64-bit polynomial hash of
word hashes, counted in one compiled pass per n instead of Python tuples per position. Both
filters read the same cached `text_stats(text)`, so in a batch the words and lines are found
once for the two.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Mapping

import numpy as np
import pyarrow as pa
from numba import njit
from pydantic import Field, field_validator, model_validator

from filters.base import DocFilter, Document, FilterParams
from filters.hashing import NGRAM_BASE, table_size
from filters.text import TextStats, safe_ratio, text_stats

STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS: tuple[str, ...] = ("\u2022", "\u25cf", "\u25cb", "\u25aa", "\u25e6", "\u2023", "\u2043",
                            "\u2013", "\u2014", "-", "*", "\u00b7")
TOP_NGRAM_SIZES: tuple[int, ...] = (2, 3, 4)
DUP_NGRAM_SIZES: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

_KEY, _LEVEL, _COUNT, _FIRST = 0, 1, 2, 3  # the columns of the n-gram table


@njit(cache=True, nogil=True)
def _ngram_covered_chars(tokens: np.ndarray, word_lengths: np.ndarray, max_n: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(top, dup): for n = 2..max_n, the characters covered by the most frequent n-gram and by
    all repeated n-grams (0 where none repeats).

    Level by level from word pairs up: n-grams are counted in an open-addressing table of their
    64-bit polynomial hashes. An n-gram can repeat only where the two (n-1)-grams inside it
    repeat, so each level counts just those positions (and extends just their hashes), and
    counting stops once nothing repeats (pruning pairs by repeated words first costs more than
    it saves). Table slots and repeat marks carry the level that
    wrote them, so nothing is cleared between levels.
    The top n-gram is the most frequent one; ties: more characters, then first in the text.
    """
    m = len(tokens)
    top = np.zeros(max_n + 1, np.int64)
    dup = np.zeros(max_n + 1, np.int64)
    prefix_chars = np.zeros(m + 1, np.int64)
    for i in range(m):
        prefix_chars[i + 1] = prefix_chars[i] + word_lengths[i]
    size = table_size(m)
    mask = np.uint64(size - 1)
    # One row per slot (key, level, count, first position): a probe touches one cache line.
    # A slot is in use at level n iff its level is n.
    table = np.zeros((size, 4), np.uint64)
    slot_of = np.empty(m, np.int64)
    repeats_at = np.zeros(m, np.int64)  # position i's n-gram repeats iff it holds n
    positions = np.arange(m - 1)  # the positions that may repeat at this level, ascending
    count = m - 1
    hashes = tokens[:-1] * NGRAM_BASE + tokens[1:]  # hashes[i]: the n-gram at i, for i in positions
    one = np.uint64(1)
    for n in range(2, max_n + 1):
        this_level = np.uint64(n)  # unsigned throughout: numba compares int64 with uint64 as floats
        for k in range(count):
            i, h = positions[k], hashes[positions[k]]
            slot = h & mask
            while table[slot, _LEVEL] == this_level and table[slot, _KEY] != h:
                slot = (slot + one) & mask
            if table[slot, _LEVEL] != this_level:
                table[slot, _KEY], table[slot, _LEVEL], table[slot, _COUNT] = h, this_level, 0
                table[slot, _FIRST] = np.uint64(i)
            table[slot, _COUNT] += one
            slot_of[k] = slot
        any_repeat = False
        for k in range(count):
            if table[slot_of[k], _COUNT] >= np.uint64(2):
                repeats_at[positions[k]] = n
                any_repeat = True
        if not any_repeat:
            break
        best_slot = -1  # the top n-gram's slot (n <= 4)
        if n <= 4:
            best, best_chars = 0, -1
            for k in range(count):
                i, slot = positions[k], slot_of[k]
                times = np.int64(table[slot, _COUNT])
                if times >= 2 and np.int64(table[slot, _FIRST]) == i:  # each repeated n-gram once, where it starts
                    chars = prefix_chars[i + n] - prefix_chars[i]
                    if times > best or (times == best and chars > best_chars):
                        best, best_chars, best_slot = times, chars, slot
        covered, covered_to = 0, 0  # characters of the words under the counted n-grams, once each
        for k in range(count):
            i = positions[k]
            counts_here = slot_of[k] == best_slot if n <= 4 else repeats_at[i] == n
            if counts_here and i + n > covered_to:
                covered += prefix_chars[i + n] - prefix_chars[max(i, covered_to)]
                covered_to = i + n
        if n <= 4:
            top[n] = covered
        else:
            dup[n] = covered
        if n == max_n:
            break
        kept = 0
        for k in range(count):
            i = positions[k]
            if i + n < m and repeats_at[i] == n and repeats_at[i + 1] == n:
                hashes[i] = hashes[i] * NGRAM_BASE + tokens[i + n]
                positions[kept] = i
                kept += 1
        count = kept
        if count < 2:
            break
    return top, dup


def ngram_char_fractions(stats: TextStats) -> tuple[dict[int, float], dict[int, float]]:
    """Gopher n-gram repetition: ({n: top n-gram char fraction}, {n: duplicate n-gram char fraction}).

    The top n-gram is the most frequent one (ties: more characters, then first in the text); its
    fraction is 0 when no n-gram occurs twice.
    """
    if stats.word_count < 2:
        return {n: 0.0 for n in TOP_NGRAM_SIZES}, {n: 0.0 for n in DUP_NGRAM_SIZES}
    top, dup = _ngram_covered_chars(stats.word_hashes, stats.word_lengths, DUP_NGRAM_SIZES[-1])
    total = stats.word_chars
    return {n: int(top[n]) / total for n in TOP_NGRAM_SIZES}, {n: int(dup[n]) / total for n in DUP_NGRAM_SIZES}


@lru_cache(maxsize=8)
def _stop_word_table(stop_words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table of the word hashes of each stop word in lower, Title and UPPER
    case: (hashes, index of the stop word; -1 = empty slot)."""
    variants = [v for w in stop_words for v in (w.lower(), w.capitalize(), w.upper())]
    size = 1 << (2 * len(variants)).bit_length()
    keys, owner = np.zeros(size, np.uint64), np.full(size, -1, np.int64)
    for i, h in enumerate(TextStats(" ".join(variants)).word_hashes.tolist()):
        slot = h & (size - 1)
        while owner[slot] != -1 and keys[slot] != h:
            slot = (slot + 1) & (size - 1)
        keys[slot], owner[slot] = h, i // 3
    return keys, owner


@njit(cache=True, nogil=True)
def _count_present(word_hashes: np.ndarray, keys: np.ndarray, owner: np.ndarray, owners: int) -> int:
    """How many owners have one of their hashes (table `keys` -> `owner`) among `word_hashes`."""
    found = np.zeros(owners, np.bool_)
    mask = np.uint64(len(keys) - 1)
    for h in word_hashes:
        slot = h & mask
        while owner[slot] != -1:
            if keys[slot] == h:
                found[owner[slot]] = True
                break
            slot = (slot + np.uint64(1)) & mask
    return int(found.sum())


def _stop_word_count(stats: TextStats, stop_words: tuple[str, ...]) -> int:
    """How many distinct stop words occur (as a whole token, in lower, Title or UPPER case)."""
    if not stop_words or stats.word_count == 0:
        return 0
    return _count_present(stats.word_hashes, *_stop_word_table(stop_words), len(stop_words))


def gopher_quality_signals(text: str, stop_words: tuple[str, ...] = STOP_WORDS) -> dict[str, Any]:
    """The Gopher quality signals of `text` (the four rules and the paper's three others), keyed
    by their `gopher_*` column names."""
    stats = text_stats(text)
    n_words, n_lines = stats.word_count, stats.line_spans.count
    return {
        "gopher_word_count": n_words,
        "gopher_mean_word_length": safe_ratio(stats.word_chars, n_words),
        "gopher_hash_word_ratio": safe_ratio(stats.hash_marks, n_words),
        "gopher_ellipsis_word_ratio": safe_ratio(stats.ellipses, n_words),
        "gopher_bullet_lines_frac": safe_ratio(stats.lines_starting_with(BULLETS), n_lines),
        "gopher_ellipsis_lines_frac": safe_ratio(stats.ellipsis_lines, n_lines),
        "gopher_alpha_words_frac": safe_ratio(n_words - stats.no_letter_words, n_words),
        "gopher_stop_words": _stop_word_count(stats, stop_words),
    }


def gopher_repetition_signals(text: str) -> dict[str, float]:
    """The Gopher repetition signals of `text` (table A1), keyed by their `gopher_*` column names
    (the names they had when one filter computed both sets, so stored runs stay readable)."""
    stats = text_stats(text)
    lines, paragraphs = stats.line_spans, stats.paragraph_spans
    dup_lines, dup_line_chars = lines.duplicates
    dup_paras, dup_para_chars = paragraphs.duplicates
    top, dup = ngram_char_fractions(stats)
    signals = {
        "gopher_dup_lines_frac": safe_ratio(dup_lines, lines.count),
        "gopher_dup_line_chars_frac": safe_ratio(dup_line_chars, lines.chars),
        "gopher_dup_paragraphs_frac": safe_ratio(dup_paras, paragraphs.count),
        "gopher_dup_paragraph_chars_frac": safe_ratio(dup_para_chars, paragraphs.chars),
    }
    signals.update({f"gopher_top_{n}gram_chars_frac": top[n] for n in TOP_NGRAM_SIZES})
    signals.update({f"gopher_dup_{n}gram_chars_frac": dup[n] for n in DUP_NGRAM_SIZES})
    return signals


_INT_SIGNALS = ("gopher_word_count", "gopher_stop_words")


def _first_failing(checks: list[tuple[str, bool]], prefix: str) -> str | None:
    """The reason `<prefix>:<rule>` of the first check that failed; None when all passed."""
    for rule, passed in checks:
        if not passed:
            return f"{prefix}:{rule}"
    return None


class GopherFilter(DocFilter):
    """Gopher quality rules; `decide` names the first failing rule, "gopher:<rule>".

    With the default parameters it decides exactly like `gopher_quality_filter` (the four rules);
    `max_symbol_word_ratio`, `max_bullet_lines_frac` and `min_stop_words` add the paper's three
    other quality rules when set (the paper: 0.1, 0.9, 2).
    """

    name: ClassVar[str] = "gopher"
    order: ClassVar[int] = 30
    reasons: ClassVar[tuple[str, ...]] = ("word_count", "mean_word_length", "hash_ratio", "ellipsis_ratio",
                                          "bullet_lines", "ellipsis_lines", "alpha_words", "stop_words")

    class Params(FilterParams):
        decisions = ("min_words", "max_words", "min_mean_word_length", "max_mean_word_length",
                     "max_ellipsis_lines_frac", "min_alpha_words_frac", "max_symbol_word_ratio",
                     "max_bullet_lines_frac", "min_stop_words")

        # Signal parameters: change what is computed (a new run, not a refilter).
        stop_words: list[str] = Field(default_factory=lambda: list(STOP_WORDS),
                                      description="words counted by the stop-word rule (lower case)")
        # Decision thresholds: the four rules of `gopher_quality_filter`...
        min_words: int = 50
        max_words: int = 100_000
        min_mean_word_length: float = 3.0
        max_mean_word_length: float = 10.0
        max_ellipsis_lines_frac: float = 0.3
        min_alpha_words_frac: float = 0.8
        # ... and the paper's three other quality rules, off unless set (None).
        max_symbol_word_ratio: float | None = Field(
            None, description="'#' per word and ellipses per word (the paper: 0.1; None = off)")
        max_bullet_lines_frac: float | None = Field(
            None, description="lines starting with a bullet (the paper: 0.9; None = off)")
        min_stop_words: int | None = Field(
            None, description="distinct stop words present (the paper: 2; None = off)")

        @model_validator(mode="before")
        @classmethod
        def _no_repetition_thresholds(cls, data: Any) -> Any:
            moved = sorted(set(data) & _REPETITION_KEYS) if isinstance(data, Mapping) else []
            if moved:
                raise ValueError(f"{moved} are thresholds of the repetition rules, which are their own "
                                 "filter now: put them under filters.gopher_repetition")
            return data

        @field_validator("stop_words")
        @classmethod
        def _single_tokens(cls, value: list[str]) -> list[str]:
            bad = [w for w in value if len(w.split()) != 1]
            if bad:
                raise ValueError(f"stop words must be single words without spaces, got {bad}")
            return value

    def signal_schema(self) -> list[pa.Field]:
        names = gopher_quality_signals("").keys()
        return [pa.field(n, pa.int32() if n in _INT_SIGNALS else pa.float64()) for n in names]

    def annotate(self, doc: Document) -> None:
        doc.signals.update(gopher_quality_signals(doc.text, tuple(self.params.stop_words)))

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        p, s = self.params, signals
        checks: list[tuple[str, bool]] = [
            ("word_count", p.min_words <= s["gopher_word_count"] <= p.max_words),
            ("mean_word_length",
             p.min_mean_word_length <= s["gopher_mean_word_length"] <= p.max_mean_word_length),
            ("hash_ratio", p.max_symbol_word_ratio is None
             or s["gopher_hash_word_ratio"] <= p.max_symbol_word_ratio),
            ("ellipsis_ratio", p.max_symbol_word_ratio is None
             or s["gopher_ellipsis_word_ratio"] <= p.max_symbol_word_ratio),
            ("bullet_lines", p.max_bullet_lines_frac is None
             or s["gopher_bullet_lines_frac"] <= p.max_bullet_lines_frac),
            ("ellipsis_lines", s["gopher_ellipsis_lines_frac"] <= p.max_ellipsis_lines_frac),
            ("alpha_words", s["gopher_alpha_words_frac"] >= p.min_alpha_words_frac),
            ("stop_words", p.min_stop_words is None or s["gopher_stop_words"] >= p.min_stop_words),
        ]
        return _first_failing(checks, self.name)


class GopherRepetitionFilter(DocFilter):
    """Gopher repetition rules (table A1); `decide` names the first failing rule,
    "gopher_repetition:<rule>"."""

    name: ClassVar[str] = "gopher_repetition"
    order: ClassVar[int] = 40
    reasons: ClassVar[tuple[str, ...]] = (
        "dup_lines", "dup_paragraphs", "dup_line_chars", "dup_paragraph_chars",
        *(f"top_{n}gram" for n in TOP_NGRAM_SIZES), *(f"dup_{n}gram" for n in DUP_NGRAM_SIZES))

    class Params(FilterParams):
        decisions = ("max_dup_lines_frac", "max_dup_paragraphs_frac", "max_dup_line_chars_frac",
                     "max_dup_paragraph_chars_frac", "max_top_ngram_chars_frac", "max_dup_ngram_chars_frac")

        # No signal parameters: every n-gram size of table A1 is always computed.
        # Decision thresholds (table A1):
        max_dup_lines_frac: float = 0.3
        max_dup_paragraphs_frac: float = 0.3
        max_dup_line_chars_frac: float = 0.2
        max_dup_paragraph_chars_frac: float = 0.2
        max_top_ngram_chars_frac: dict[int, float] = Field(
            default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
        max_dup_ngram_chars_frac: dict[int, float] = Field(
            default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})

        @field_validator("max_top_ngram_chars_frac")
        @classmethod
        def _top_sizes(cls, value: dict[int, float]) -> dict[int, float]:
            return _check_sizes(value, TOP_NGRAM_SIZES)

        @field_validator("max_dup_ngram_chars_frac")
        @classmethod
        def _dup_sizes(cls, value: dict[int, float]) -> dict[int, float]:
            return _check_sizes(value, DUP_NGRAM_SIZES)

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field(n, pa.float64()) for n in gopher_repetition_signals("")]

    def annotate(self, doc: Document) -> None:
        doc.signals.update(gopher_repetition_signals(doc.text))

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        p, s = self.params, signals
        checks: list[tuple[str, bool]] = [
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
        return _first_failing(checks, self.name)


_REPETITION_KEYS = set(GopherRepetitionFilter.Params.model_fields) - set(FilterParams.model_fields)


def _check_sizes(value: dict[int, float], allowed: tuple[int, ...]) -> dict[int, float]:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"n-gram sizes {unknown} not computed; use a subset of {list(allowed)}")
    return value


def split_combined_params(filters: Mapping[str, Any]) -> dict[str, Any]:
    """A `filters:` mapping as a run stored it before the repetition rules became their own
    filter (one `gopher` section with both sets of thresholds), as two sections: `gopher`, then
    `gopher_repetition` right after it (same decisions, same order). Other mappings unchanged."""
    gopher = filters.get("gopher")
    if not isinstance(gopher, Mapping) or not set(gopher) & _REPETITION_KEYS or "gopher_repetition" in filters:
        return dict(filters)
    out: dict[str, Any] = {}
    for name, params in filters.items():
        if name != "gopher":
            out[name] = params
            continue
        out["gopher"] = {k: v for k, v in gopher.items() if k not in _REPETITION_KEYS}
        out["gopher_repetition"] = {k: v for k, v in gopher.items() if k in _REPETITION_KEYS or k == "enabled"}
    return out


_QUALITY = GopherFilter()
_REPETITION = GopherRepetitionFilter()


def gopher_quality_filter(text: str) -> bool:
    """True when `text` passes the four Gopher quality rules (word count, mean word length,
    ellipsis lines, words with a letter) at the paper's thresholds."""
    return _QUALITY.decide(gopher_quality_signals(text)) is None


def gopher_repetition_filter(text: str) -> bool:
    """True when `text` passes every Gopher repetition rule at the paper's thresholds (table A1)."""
    return _REPETITION.decide(gopher_repetition_signals(text)) is None
