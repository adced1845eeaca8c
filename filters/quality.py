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

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from filters.base import Chart, DocFilter, Document, FilterParams, file_sha256
from filters.classifier import load_classifier
from filters.models import ModelError, resolve_model
from filters.text import safe_ratio, text_stats

DEFAULT_MODEL = "sieve-quality"
DEFAULT_MAX_CHARS = 5_000  # the first 5,000 characters: enough to judge, bounded cost per document
FEATURES = ("text_logit", "log_chars", "alpha_words_frac", "line_punct_frac", "log_chars_per_line")
_P_FLOOR = 1e-5  # fastText's own floor on a probability (std_log): logits stay finite


def document_features(text: str, p_high: float) -> list[float]:
    """FEATURES of `text` whose text model says P(high) = `p_high`: the combiner's inputs, computed
    the same way when it is trained and when it predicts."""
    stats = text_stats(text)
    lines, words = stats.line_spans.count, stats.word_count
    p = min(max(p_high, _P_FLOOR), 1.0 - _P_FLOOR)
    return [math.log(p / (1.0 - p)), math.log1p(len(text)), safe_ratio(words - stats.no_letter_words, words),
            safe_ratio(stats.lines_ending_in_punctuation, lines), math.log1p(len(text) / max(lines, 1))]


@dataclass(frozen=True)
class Combiner:
    """Logistic regression over standardized FEATURES: P(high) = sigmoid(coef . (x - mean) / std + intercept)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def logit(self, x: list[float]) -> float:
        return self.intercept + sum(c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.std))

    def probability(self, x: list[float]) -> float:
        z = self.logit(x)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "std": list(self.std),
                "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_file(cls, path: Path) -> "Combiner":
        try:
            raw = json.loads(path.read_text())
            combiner = cls(tuple(raw["features"]), tuple(raw["mean"]), tuple(raw["std"]), tuple(raw["coef"]),
                           float(raw["intercept"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"quality combiner {path}: unreadable ({exc})") from exc
        if combiner.features != FEATURES or not len(combiner.mean) == len(combiner.std) == len(combiner.coef) == len(FEATURES):
            raise ModelError(f"quality combiner {path}: features {list(combiner.features)}, this Sieve computes "
                             f"{list(FEATURES)} (retrain with python -m filters.train)")
        return combiner


def combiner_path(model_path: Path) -> Path:
    """Where a model's combiner lives: `<stem>.combiner.json` beside the model file."""
    return model_path.with_name(model_path.stem + ".combiner.json")


@lru_cache(maxsize=16)
def load_combiner(model: str) -> Combiner | None:
    """The combiner shipped beside `model`'s file, or None (the text model's P(high) is the score)."""
    path = combiner_path(resolve_model(model))
    return Combiner.from_file(path) if path.is_file() else None


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
