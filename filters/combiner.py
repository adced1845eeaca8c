"""Combiners: a small logistic regression over a text model's logit and a few document features.

A fastText model averages word vectors, so what it cannot see directly is learned beside it:
length and layout for quality (`filters.quality`), how many distinct terms of a word list a text
holds for NSFW and hate speech (`filters.toxicity`). A combiner is stored beside its model as
`<stem>.combiner.json` (features, standardization, coefficients and, for term features, the
terms), fitted by the same `python -m filters.train` command that trains the model, and the
features are computed by the same functions in training and at prediction.

Terms are counted on the tokens the model itself reads (`filters.classifier.Tokens`: the text
after `prepare_text` and the model's normalization, so "f*ck" counts as "fuck" for a model that
declares deobfuscate-v1): a term of several words is a run of consecutive tokens. The count is
one compiled pass over the token hashes, with no second reading of the text.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from filters.classifier import Tokens, line_tokens
from filters.models import ModelError, prepare_text

P_FLOOR = 1e-5  # fastText's own floor on a probability (std_log): logits stay finite


def text_logit(p: float) -> float:
    """log(p / (1 - p)) of a model's probability, floored as fastText floors it."""
    p = min(max(p, P_FLOOR), 1.0 - P_FLOOR)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Combiner:
    """Logistic regression over standardized features: P = sigmoid(coef . (x - mean) / std + intercept).
    `terms`: the word list that term-count features count (prepared as the model's text is)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    terms: tuple[str, ...] = ()

    def logit(self, x: list[float]) -> float:
        return self.intercept + sum(c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.std))

    def probability(self, x: list[float]) -> float:
        z = self.logit(x)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"features": list(self.features), "mean": list(self.mean), "std": list(self.std),
                               "coef": list(self.coef), "intercept": self.intercept}
        if self.terms:
            out["terms"] = list(self.terms)
        return out

    @classmethod
    def from_file(cls, path: Path, features: tuple[str, ...]) -> "Combiner":
        """The combiner at `path`; a ModelError unless it combines exactly `features`."""
        try:
            raw = json.loads(path.read_text())
            combiner = cls(tuple(raw["features"]), tuple(raw["mean"]), tuple(raw["std"]), tuple(raw["coef"]),
                           float(raw["intercept"]), tuple(raw.get("terms", ())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"combiner {path}: unreadable ({exc})") from exc
        if combiner.features != features or not len(combiner.mean) == len(combiner.std) == len(combiner.coef) == len(features):
            raise ModelError(f"combiner {path}: features {list(combiner.features)}, this Sieve computes "
                             f"{list(features)} (retrain with python -m filters.train)")
        return combiner


def combiner_path(model_path: Path) -> Path:
    """Where a model's combiner lives: `<stem>.combiner.json` beside the model file."""
    return model_path.with_name(model_path.stem + ".combiner.json")


# ---------------------------------------------------------------- distinct terms of a word list

@dataclass(frozen=True)
class TermTable:
    """Terms as token-hash runs, ordered by their first token's hash (binary search per token)."""

    firsts: np.ndarray   # uint32: first token hash of each term, sorted
    starts: np.ndarray   # int64: where each term's hashes begin in `hashes` (and one past the last)
    hashes: np.ndarray   # uint32: every term's token hashes, concatenated


def prepare_terms(lines: list[str]) -> tuple[str, ...]:
    """A word list's terms as the models' text is prepared (lowercase, marks split off), distinct, sorted."""
    return tuple(sorted({t for t in (prepare_text(line) for line in lines) if t}))


def term_table(terms: tuple[str, ...]) -> TermTable:
    runs = sorted((line_tokens(term).hashes for term in terms), key=lambda h: int(h[0]))
    runs = [h for h in runs if len(h)]
    starts = np.cumsum([0] + [len(h) for h in runs]).astype(np.int64)
    flat = np.concatenate(runs).astype(np.uint32) if runs else np.zeros(0, np.uint32)
    return TermTable(np.array([h[0] for h in runs], np.uint32), starts, flat)


@njit(cache=True, nogil=True)
def _distinct_terms(tokens: np.ndarray, firsts: np.ndarray, starts: np.ndarray, hashes: np.ndarray) -> int:
    found = np.zeros(len(firsts), np.bool_)
    for i in range(len(tokens)):
        j = np.searchsorted(firsts, tokens[i])
        while j < len(firsts) and firsts[j] == tokens[i]:
            size = starts[j + 1] - starts[j]
            if i + size <= len(tokens):
                same = True
                for k in range(1, size):
                    if tokens[i + k] != hashes[starts[j] + k]:
                        same = False
                        break
                found[j] |= same
            j += 1
    return int(found.sum())


def distinct_terms(tokens: Tokens, table: TermTable) -> int:
    """How many of the table's terms occur in `tokens` (each counted once)."""
    return _distinct_terms(tokens.hashes, table.firsts, table.starts, table.hashes)


TERM_FEATURES = ("text_logit", "log_terms", "terms_per_sqrt_word")


def term_features(tokens: Tokens, p: float, table: TermTable) -> list[float]:
    """TERM_FEATURES of a text the model read as `tokens` and scored P = `p`."""
    terms = distinct_terms(tokens, table)
    return [text_logit(p), math.log1p(terms), terms / math.sqrt(len(tokens.hashes) + 1)]
