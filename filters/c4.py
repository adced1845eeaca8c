"""C4 rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning"), as in tfds' C4 and
datatrove's C4QualityFilter.

Line rules, in C4's order: drop lines with a word longer than 1,000 characters, lines not ending in
terminal punctuation (or ending in "..."), lines with fewer than 3 words, lines mentioning
"javascript", and cookie/privacy-policy lines. Among the lines that pass the first three rules, a
"lorem ipsum" or a "{" removes the whole page (so does a bad word when a list is configured). The
page also needs at least 5 sentences in the lines C4 keeps.

By default the filter only computes signals; `rewrite_text: true` also replaces the text by the
kept lines, which is what C4 itself did.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar, Mapping

import fsspec
import pyarrow as pa
from pydantic import Field

from filters.base import DocFilter, Document, FilterParams
from filters.text import text_stats

# C4's marks plus the typographic closing quotes that HTML extraction produces.
C4_END_PUNCTUATION: tuple[str, ...] = (".", "?", "!", '"', "'", "\u201d", "\u2019")
POLICY_SUBSTRINGS: tuple[str, ...] = ("terms of use", "privacy policy", "cookie policy",
                                      "uses cookies", "use of cookies", "use cookies")
_POLICY = re.compile("|".join(POLICY_SUBSTRINGS))
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
# Inside a line a sentence ends at ., ! or ? (maybe closing a quote) followed by a space; every kept
# line also ends one (close to C4's nltk count). One regex pass: str.count of the nine two- and
# three-character breaks was 4x slower on real pages (slow on non-ASCII strings).
_SENTENCE_BREAK = re.compile('[.!?]["\u201d]? ')


_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")  # runs of letters/digits, or single symbols


class PhraseMatcher:
    """Counts whole-token occurrences of word-list phrases ("g-spot", "2 girls 1 cup", emoji).

    Text and phrases are lower-cased and cut into the same tokens, so matches respect word
    boundaries. A set intersection of the text's tokens with the phrases' first tokens skips
    most texts without looking at positions; a 377-phrase regex alternation was ~10x slower.
    """

    def __init__(self, phrases: set[str]) -> None:
        self.by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in phrases:
            tokens = tuple(_TOKEN.findall(phrase.lower()))
            if tokens:
                self.by_first.setdefault(tokens[0], []).append(tokens)

    def count(self, text: str) -> int:
        tokens = _TOKEN.findall(text.lower())
        if self.by_first.keys().isdisjoint(tokens):
            return 0
        hits = 0
        for i, token in enumerate(tokens):
            for phrase in self.by_first.get(token, ()):
                if len(phrase) == 1 or tuple(tokens[i:i + len(phrase)]) == phrase:
                    hits += 1
        return hits


@lru_cache(maxsize=4)
def load_badwords(path: str) -> PhraseMatcher:
    """The phrases of the word list at `path` (one per line), e.g. the LDNOOBW English list
    (CC-BY-4.0, github.com/LDNOOBW) that C4 used."""
    with fsspec.open(path, "rt", encoding="utf-8") as handle:
        phrases = {line.strip() for line in handle if line.strip()}
    if not phrases:
        raise ValueError(f"c4.badwords_path: word list {path} is empty")
    return PhraseMatcher(phrases)


def c4_signals(text: str, *, min_words_per_line: int = 3, max_word_length: int = 1000,
               remove_citations: bool = True, badwords: PhraseMatcher | None = None
               ) -> tuple[dict[str, Any], list[str]]:
    """The `c4_*` signals of `text` and the lines C4 would keep."""
    kept: list[str] = []
    lorem_ipsum = curly_bracket = False
    javascript_lines = policy_lines = 0
    lines = text_stats(text).lines
    for line in lines:
        if remove_citations and "[" in line:
            line = _CITATION.sub("", line).rstrip()
        if not line.endswith(C4_END_PUNCTUATION) or line.endswith("..."):
            continue
        if len(line.split(None, min_words_per_line - 1)) < min_words_per_line:
            continue
        if len(line) > max_word_length and max(map(len, line.split())) > max_word_length:
            continue
        lowered = line.lower()
        if "lorem ipsum" in lowered:
            lorem_ipsum = True
        if "{" in line:
            curly_bracket = True
        if "javascript" in lowered:
            javascript_lines += 1
            continue
        if ("cookie" in lowered or "polic" in lowered or "terms of use" in lowered) and \
                _POLICY.search(lowered):
            policy_lines += 1
            continue
        kept.append(line)
    kept_text = "\n".join(kept)
    signals = {
        "c4_lines": len(lines),
        "c4_lines_kept": len(kept),
        "c4_sentences": len(kept) + len(_SENTENCE_BREAK.findall(kept_text)),
        "c4_javascript_lines": javascript_lines,
        "c4_policy_lines": policy_lines,
        "c4_lorem_ipsum": lorem_ipsum,
        "c4_curly_bracket": curly_bracket,
        "c4_badwords": None if badwords is None else badwords.count(text),
    }
    return signals, kept


class C4Filter(DocFilter):
    """C4 rules as `c4_*` signals; `decide` returns the first failing rule, "c4:<rule>"."""

    name: ClassVar[str] = "c4"
    order: ClassVar[int] = 50
    reasons: ClassVar[tuple[str, ...]] = ("lorem_ipsum", "curly_bracket", "badwords", "min_sentences")

    class Params(FilterParams):
        decisions = ("min_sentences", "filter_lorem_ipsum", "filter_curly_bracket", "max_badwords")
        files = ("badwords_path",)

        min_words_per_line: int = Field(3, ge=0)
        max_word_length: int = 1000
        remove_citations: bool = Field(True, description="strip [1], [edit], [citation needed]")
        min_sentences: int = 5
        filter_lorem_ipsum: bool = True
        filter_curly_bracket: bool = True
        badwords_path: str | None = Field(
            None, description="word list (one phrase per line), e.g. LDNOOBW en; None = no check")
        max_badwords: int = Field(0, ge=0, description="remove pages with more bad-word matches")
        rewrite_text: bool = Field(False, description="replace the text by the lines C4 keeps")

    def signal_schema(self) -> list[pa.Field]:
        counts = ("c4_lines", "c4_lines_kept", "c4_sentences", "c4_javascript_lines",
                  "c4_policy_lines")
        return [pa.field(name, pa.int32()) for name in counts] + [
            pa.field("c4_lorem_ipsum", pa.bool_()),
            pa.field("c4_curly_bracket", pa.bool_()),
            pa.field("c4_badwords", pa.int32(), nullable=True),  # null when no list is configured
        ]

    def annotate(self, doc: Document) -> None:
        p = self.params
        badwords = load_badwords(p.badwords_path) if p.badwords_path else None
        signals, kept = c4_signals(doc.text, min_words_per_line=p.min_words_per_line,
                                   max_word_length=p.max_word_length,
                                   remove_citations=p.remove_citations, badwords=badwords)
        doc.signals.update(signals)
        if p.rewrite_text:
            doc.text = "\n".join(kept)

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        p = self.params
        if p.filter_lorem_ipsum and signals["c4_lorem_ipsum"]:
            return "c4:lorem_ipsum"
        if p.filter_curly_bracket and signals["c4_curly_bracket"]:
            return "c4:curly_bracket"
        badwords = signals["c4_badwords"]
        if badwords is not None and badwords > p.max_badwords:
            return "c4:badwords"
        if signals["c4_sentences"] < p.min_sentences:
            return "c4:min_sentences"
        return None
