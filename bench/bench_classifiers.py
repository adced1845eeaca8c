"""Held-out AUC of the default quality, hate-speech and NSFW models, and classifier throughput."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np

from filters.quality import quality_score
from filters.toxicity import hate_score, nsfw_score
from filters.train import recipe_heldout, roc_auc

MODELS = Path(__file__).resolve().parents[1] / "filters/models"
SCORERS = {"sieve-quality": quality_score, "sieve-hate": hate_score, "sieve-nsfw": nsfw_score}
HELD_OUT = {"sieve-quality": "WikiText-2 + WCXB article/documentation text vs CC text",
            "sieve-hate": "Davidson et al. 2017 tweets, class-balanced",
            "sieve-nsfw": "CC text weakly labelled by the LDNOOBW list (+ Davidson tweets) vs WikiText-2"}


def heldout_auc(model: str, shared: Path) -> tuple[float, int, int]:
    """AUC of the shipped model on its held-out pieces, rebuilt from the recipe in its metrics
    file (split by source document: no held-out piece shares a document with training)."""
    pos_label, held = recipe_heldout(MODELS / f"{model}.metrics.json", shared)
    scores = np.array([SCORERS[model](ex.text) for ex in held])
    return roc_auc(scores, np.array([ex.label == pos_label for ex in held])), len(held), len({ex.group for ex in held})


def run(shared: Path, work: Path, quick: bool) -> str:
    lines = ["## Classifiers (default models shipped in filters/models/)", "",
             "| model | held-out set (split by source document) | pieces | documents | AUC |", "|---|---|---:|---:|---:|"]
    for model in SCORERS:
        auc, pieces, documents = heldout_auc(model, shared)
        lines.append(f"| {model} | {HELD_OUT[model]} | {pieces} | {documents} | {auc:.3f} |")
    docs = [json.loads(line)["text"] for line in gzip.open(
        shared / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")][: 100 if quick else 697]
    rates = {}
    for name, fn in (("quality", quality_score), ("nsfw", nsfw_score), ("hate", hate_score)):
        fn(docs[0])
        started = time.perf_counter()
        for d in docs:
            fn(d)
        rates[name] = len(docs) / (time.perf_counter() - started)
    lines += ["", f"Throughput on {len(docs)} real CC documents (first 5,000 characters each), one core: "
              + ", ".join(f"{k} {v:.0f} docs/s" for k, v in rates.items()) + ".", ""]
    return "\n".join(lines)
