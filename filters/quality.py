"""fastText quality classifier: P(high quality) of a document.

The default model (`sieve-quality`) is Sieve's own (card: filters/models/sieve-quality.md); DCLM's
`dclm-oh-eli5` or any fastText file named by path can be used instead (labels are mapped by the
registry in `filters.models`; a model without a "high" label scores 0).
"""
from __future__ import annotations

from typing import Any, Mapping

import pyarrow as pa

from filters.base import DocFilter, Document, FilterParams
from filters.classifier import load_classifier
from filters.models import ModelError

DEFAULT_MODEL = "sieve-quality"
DEFAULT_MAX_CHARS = 5_000  # the first 5,000 characters: enough to judge, bounded cost per document


def quality_score(text: str, *, model: str = DEFAULT_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> float:
    """P("high") of `text` (0.0 for text without words: nothing to call high quality)."""
    return load_classifier(model).probability(text, "high", max_chars)


def classify_quality(text: str, *, model: str = DEFAULT_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, float]:
    """("high" | "low", probability of that label), e.g. ("high", 0.93)."""
    p_high = quality_score(text, model=model, max_chars=max_chars)
    return ("high", p_high) if p_high >= 0.5 else ("low", 1.0 - p_high)


class QualityParams(FilterParams):
    decisions = ("min_score",)
    files = ("model",)

    model: str = DEFAULT_MODEL
    min_score: float = 0.5  # keep documents with P(high) >= min_score
    max_chars: int = DEFAULT_MAX_CHARS


class QualityFilter(DocFilter):
    """Signal `quality_score` = P(high); removes documents below `min_score` ("quality:low_score")."""

    name = "quality"
    Params = QualityParams

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field("quality_score", pa.float64())]

    def annotate(self, doc: Document) -> None:
        try:
            score = quality_score(doc.text, model=self.params.model, max_chars=self.params.max_chars)
        except ModelError as exc:
            raise ModelError(f"filters.quality.model: {exc}") from exc
        doc.signals["quality_score"] = score

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        return "quality:low_score" if signals["quality_score"] < self.params.min_score else None
