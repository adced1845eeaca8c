"""fastText NSFW and hate/offensive-speech classifiers.

Defaults are Sieve's own models (cards: filters/models/sieve-nsfw.md, sieve-hate.md); Dolma's
Jigsaw models (`dolma-jigsaw-nsfw`, `dolma-jigsaw-hate`) or any fastText file can be named instead.
When a `<stem>.combiner.json` lies beside the model (Sieve's two ship one), the score is its
logistic regression over [the model's logit, log(1 + distinct word-list terms), terms per
sqrt(tokens)], the terms counted on the tokens the model read (`filters.combiner`): a word list
transfers to text of other registers better than a model trained on a few sources, and the two
together better than either (leave-one-source-out figures in the model cards).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import pyarrow as pa

from filters.base import Chart, DocFilter, Document, FilterParams, file_sha256
from filters.classifier import load_classifier
from filters.combiner import TERM_FEATURES, Combiner, TermTable, combiner_path, term_features, term_table
from filters.models import ModelError, resolve_model

NSFW_MODEL = "sieve-nsfw"
HATE_MODEL = "sieve-hate"
DEFAULT_MAX_CHARS = 5_000


@lru_cache(maxsize=16)
def load_term_combiner(model: str) -> tuple[Combiner, TermTable] | None:
    """The term combiner shipped beside `model`'s file and its compiled terms, or None."""
    path = combiner_path(resolve_model(model))
    if not path.is_file():
        return None
    combiner = Combiner.from_file(path, TERM_FEATURES)
    return combiner, term_table(combiner.terms)


def _probability(text: str, model: str, positive: str, max_chars: int) -> float:
    classifier = load_classifier(model)
    p = classifier.probability(text, positive, max_chars)
    combined = load_term_combiner(model)
    if combined is None:
        return p
    tokens = classifier.tokens(text, max_chars)
    if not tokens.nonempty:
        return 0.0
    combiner, table = combined
    return combiner.probability(term_features(tokens, p, table))


def nsfw_score(text: str, *, model: str = NSFW_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> float:
    """P("nsfw") of `text` (0.0 for text without words)."""
    return _probability(text, model, "nsfw", max_chars)


def hate_score(text: str, *, model: str = HATE_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> float:
    """P("toxic") of `text` (0.0 for text without words)."""
    return _probability(text, model, "toxic", max_chars)


def classify_nsfw(text: str, *, model: str = NSFW_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, float]:
    """("nsfw" | "non-nsfw", probability of that label)."""
    p = nsfw_score(text, model=model, max_chars=max_chars)
    return ("nsfw", p) if p >= 0.5 else ("non-nsfw", 1.0 - p)


def classify_toxic_speech(text: str, *, model: str = HATE_MODEL, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, float]:
    """("toxic" | "non-toxic", probability of that label)."""
    p = hate_score(text, model=model, max_chars=max_chars)
    return ("toxic", p) if p >= 0.5 else ("non-toxic", 1.0 - p)


class ToxicityParams(FilterParams):
    decisions = ("max_nsfw", "max_hate")
    files = ("nsfw_model", "hate_model")

    nsfw_model: str = NSFW_MODEL
    hate_model: str = HATE_MODEL
    max_nsfw: float = 0.5  # remove documents with P(nsfw) > max_nsfw
    max_hate: float = 0.5  # remove documents with P(toxic) > max_hate
    max_chars: int = DEFAULT_MAX_CHARS


class ToxicityFilter(DocFilter):
    """Signals `nsfw_score`, `hate_score`; removes documents above `max_nsfw` ("toxicity:nsfw") or
    `max_hate` ("toxicity:hate"), NSFW checked first."""

    name = "toxicity"
    Params = ToxicityParams
    order = 80  # the most expensive filter (two fastText models, 0.8 ms/doc): last that decides
    reasons = ("nsfw", "hate")
    charts = (Chart("nsfw_score", "NSFW classifier: P(nsfw)", "max_nsfw", "nsfw"),
              Chart("hate_score", "hate-speech classifier: P(toxic)", "max_hate", "hate"))
    # 2: models that declare deobfuscate-v1 read the text through it (filters/deobfuscate.py).
    # 3: a combiner beside the model adds word-list term counts (filters/combiner.py).
    version = 3

    def signal_schema(self) -> list[pa.Field]:
        return [pa.field("nsfw_score", pa.float64()), pa.field("hate_score", pa.float64())]

    def provenance(self) -> dict[str, Any]:
        """As every filter's, plus the vocabulary the de-obfuscation resolves masked words to and
        the combiners beside the models: their coefficients and terms shape the scores too."""
        from filters.deobfuscate import VOCABULARY

        record = super().provenance()
        record["files"]["deobfuscate_vocabulary"] = file_sha256(str(VOCABULARY))
        for key in ("nsfw_model", "hate_model"):
            combiner = combiner_path(resolve_model(getattr(self.params, key)))
            if combiner.is_file():
                record["files"][f"{key}_combiner"] = file_sha256(str(combiner))
        return record

    def annotate(self, doc: Document) -> None:
        p = self.params
        for key, score, model in (("nsfw", nsfw_score, p.nsfw_model), ("hate", hate_score, p.hate_model)):
            try:
                doc.signals[f"{key}_score"] = score(doc.text, model=model, max_chars=p.max_chars)
            except ModelError as exc:
                raise ModelError(f"filters.toxicity.{key}_model: {exc}") from exc

    def decide(self, signals: Mapping[str, Any]) -> str | None:
        if signals["nsfw_score"] > self.params.max_nsfw:
            return "toxicity:nsfw"
        if signals["hate_score"] > self.params.max_hate:
            return "toxicity:hate"
        return None
