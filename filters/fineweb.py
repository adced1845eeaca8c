"""FineWeb quality rules (Penedo et al. 2024, "The FineWeb Datasets").

Three line statistics that the FineWeb authors chose on top of C4 and Gopher: at least 12% of the
lines end in punctuation, at most 10% of the characters sit in duplicated lines, and at most 67%
of the lines are short (30 characters or fewer). datatrove's FineWebQualityFilter adds a
newline-per-word ("list") ratio; its signal is computed here and the rule is off unless
`max_newline_word_ratio` is set (datatrove uses 0.3).
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pyarrow as pa
from pydantic import Field

from filters.base import DocFilter, Document, FilterParams
from filters.text import safe_ratio, text_stats

SHORT_LINE_CHARS = 30


def fineweb_signals(text: str, short_line_chars: int = SHORT_LINE_CHARS) -> dict[str, Any]:
    """The `fineweb_*` signals of `text` (lines are the stripped, non-empty lines)."""
    stats = text_stats(text)
    lines = stats.line_spans
    n_lines = lines.count
    return {
        "fineweb_lines": n_lines,
        "fineweb_line_punct_frac": safe_ratio(stats.lines_ending_in_punctuation, n_lines),
        "fineweb_dup_line_chars_frac": safe_ratio(lines.duplicates[1], lines.chars),
        "fineweb_short_lines_frac": safe_ratio(int((lines.lengths <= short_line_chars).sum()), n_lines),
        "fineweb_newline_word_ratio": safe_ratio(stats.newlines, stats.word_count),
    }


class FineWebFilter(DocFilter):
    """FineWeb rules as `fineweb_*` signals; `decide` returns "fineweb:<rule>" of the first failure."""

    name: ClassVar[str] = "fineweb"
    order: ClassVar[int] = 60
    reasons: ClassVar[tuple[str, ...]] = ("empty", "line_punct", "dup_line_chars", "short_lines", "list_ratio")

    class Params(FilterParams):
        decisions = ("min_line_punct_frac", "max_dup_line_chars_frac", "max_short_lines_frac", "max_newline_word_ratio")

        min_line_punct_frac: float = 0.12
        max_dup_line_chars_frac: float = 0.1
        max_short_lines_frac: float = 0.67
        short_line_chars: int = Field(SHORT_LINE_CHARS, description="a line this long or shorter is short")
        max_newline_word_ratio: float | None = Field(None, description="datatrove's list rule (0.3)")

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field("fineweb_lines", pa.int32())] + [
            pa.field(name, pa.float64()) for name in (
                "fineweb_line_punct_frac", "fineweb_dup_line_chars_frac",
                "fineweb_short_lines_frac", "fineweb_newline_word_ratio")]

    def annotate(self, doc: Document) -> None:
        doc.signals.update(fineweb_signals(doc.text, self.params.short_line_chars))

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        p = self.params
        if signals["fineweb_lines"] == 0:
            return "fineweb:empty"
        if signals["fineweb_line_punct_frac"] < p.min_line_punct_frac:
            return "fineweb:line_punct"
        if signals["fineweb_dup_line_chars_frac"] > p.max_dup_line_chars_frac:
            return "fineweb:dup_line_chars"
        if signals["fineweb_short_lines_frac"] > p.max_short_lines_frac:
            return "fineweb:short_lines"
        limit = p.max_newline_word_ratio
        if limit is not None and signals["fineweb_newline_word_ratio"] > limit:
            return "fineweb:list_ratio"
        return None
