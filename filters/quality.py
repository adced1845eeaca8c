"""Quality score of a document: P(high quality), from a fastText text model and, for Sieve's
default, a few document statistics the rule filters already compute.

The default model (`sieve-quality`, card: filters/models/sieve-quality.md) is two parts trained by
one command (`python -m filters.train quality ...`): a fastText model that reads the first
`max_chars` characters, and a logistic regression (`sieve-quality.combiner.json`, beside the
model file) over [the text model's logit, log characters, share of words with a letter, share of
lines ending in punctuation, log characters per line]. A text model alone cannot see length or
layout (it averages word vectors of the first 5,000 characters); people judging web pages weigh
both. The statistics come from `filters.text.text_stats`, the view the Gopher and FineWeb
filters share in a batch, so they cost a cache lookup in the pipeline.

Any fastText file named by path works too (DCLM's `dclm-oh-eli5`, a model of your own); when a
`<stem>.combiner.json` lies beside it, the combination is applied the same way. Labels are mapped
by the registry in `filters.models`; a model without a "high" label scores 0.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import pyarrow as pa

from filters.base import Chart, DocFilter, Document, FilterParams, file_sha256
from filters.classifier import load_classifier
from filters.combiner import Combiner, combiner_path, text_logit
from filters.models import ModelError, resolve_model
from filters.text import safe_ratio, text_stats

DEFAULT_MODEL = "sieve-quality"
DEFAULT_MAX_CHARS = 5_000  # the first 5,000 characters: enough to judge, bounded cost per document
FEATURES = ("text_logit", "log_chars", "alpha_words_frac", "line_punct_frac", "log_chars_per_line")


def document_features(text: str, p_high: float) -> list[float]:
    """FEATURES of `text` whose text model says P(high) = `p_high`: the combiner's inputs, computed
    the same way when it is trained and when it predicts."""
    stats = text_stats(text)
    lines, words = stats.line_spans.count, stats.word_count
    return [text_logit(p_high), math.log1p(len(text)), safe_ratio(words - stats.no_letter_words, words),
            safe_ratio(stats.lines_ending_in_punctuation, lines), math.log1p(len(text) / max(lines, 1))]


@lru_cache(maxsize=16)
def load_combiner(model: str) -> Combiner | None:
    """The combiner shipped beside `model`'s file, or None (the text model's P(high) is the score)."""
    path = combiner_path(resolve_model(model))
    return Combiner.from_file(path, FEATURES) if path.is_file() else None


def quality_score(text: str, *, model: str = DEFAULT_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> float:
    """P("high") of `text` (0.0 for text without words: nothing to call high quality)."""
    p_high = load_classifier(model).probability(text, "high", max_chars)
    combiner = load_combiner(model)
    if combiner is None or not text_stats(text).word_count:
        return p_high
    return combiner.probability(document_features(text, p_high))


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
    order = 70  # a fastText model, 0.13 ms/doc: before toxicity's two (0.8 ms/doc)
    reasons = ("low_score",)
    score_column = "quality_score"  # also the dedup stage's survivor preference
    charts = (Chart(score_column, "quality classifier: P(high)", "min_score", "low_score"),)

    # 2: the score combines the text model with document statistics (sieve-quality.combiner.json).
    version = 2

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field(self.score_column, pa.float64())]

    def provenance(self) -> dict[str, Any]:
        """As every filter's, plus the combiner beside the model: its coefficients shape the score too."""
        record = super().provenance()
        combiner = combiner_path(resolve_model(self.params.model))
        if combiner.is_file():
            record["files"]["model_combiner"] = file_sha256(str(combiner))
        return record

    def annotate(self, doc: Document) -> None:
        try:
            score = quality_score(doc.text, model=self.params.model, max_chars=self.params.max_chars)
        except ModelError as exc:
            raise ModelError(f"filters.quality.model: {exc}") from exc
        doc.signals[self.score_column] = score

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        return "quality:low_score" if signals[self.score_column] < self.params.min_score else None
