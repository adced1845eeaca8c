"""Held-out AUC of the default hate-speech and quality models, and classifier throughput."""
from __future__ import annotations

import csv
import gzip
import json
import random
import time
from pathlib import Path

import numpy as np

from filters.quality import quality_score
from filters.toxicity import hate_score, nsfw_score
from filters.train import chunk_words, prepare_text, read_documents, roc_auc, split_holdout


def _hate_heldout(shared: Path) -> tuple[float, int]:
    """The card's split: class-balanced sample (4,163 per class, seed 0), 10% held out (seed 0)."""
    with open(shared / "toxicity/davidson/labeled_data.csv", newline="") as fh:
        rows = [(r["tweet"], int(r["class"])) for r in csv.DictReader(fh)]
    rng = random.Random(0)
    toxic = rng.sample([t for t, c in rows if c in (0, 1)], 4163)
    neutral = rng.sample([t for t, c in rows if c == 2], 4163)
    labelled = [(True, prepare_text(t, 20_000)) for t in toxic] + [(False, prepare_text(t, 20_000)) for t in neutral]
    _, held = split_holdout([x for x in labelled if x[1]], 0.1, 0)
    scores = np.array([hate_score(text) for _, text in held])
    return roc_auc(scores, np.array([y for y, _ in held])), len(held)


def _quality_heldout(shared: Path) -> tuple[float, int]:
    """The card's data and split, rebuilt the way `python -m filters.train quality` builds it."""
    fields = ["text", "t", "ground_truth.main_content"]
    pos_files = [shared / "quality/wikitext-2/valid.txt", shared / "quality/wikitext-2/test.txt"]
    wcxb = sorted((shared / "html/wcxb-dev/ground-truth").glob("*.json"))
    neg_files = [shared / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz",
                 shared / "quality/dolma-cc-text/cc_en_head-0091.jsonl.gz",
                 shared / "quality/dolma-cc-text/cc_en_head-0174.jsonl.gz", shared / "html/hplt-sample100/CC.jsonl.zst"]
    where = {"_internal.page_type.primary": {"article", "documentation"}}
    pos = [c for f in pos_files for d in read_documents(f, text_fields=fields, wikitext=True) for c in chunk_words(d, 200)]
    pos += [c for f in wcxb for d in read_documents(f, text_fields=fields, where=where) for c in chunk_words(d, 200)]
    neg = [c for f in neg_files for d in read_documents(f, text_fields=fields) for c in chunk_words(d, 200)]
    rng = random.Random(0)
    pos, neg = rng.sample(pos, min(len(pos), 2100)), rng.sample(neg, min(len(neg), 2100))
    labelled = [(True, prepare_text(t, 20_000)) for t in pos] + [(False, prepare_text(t, 20_000)) for t in neg]
    _, held = split_holdout([x for x in labelled if x[1]], 0.1, 0)
    scores = np.array([quality_score(text) for _, text in held])
    return roc_auc(scores, np.array([y for y, _ in held])), len(held)


def run(shared: Path, work: Path, quick: bool) -> str:
    hate_auc, n_hate = _hate_heldout(shared)
    quality_auc, n_quality = _quality_heldout(shared)
    docs = [json.loads(line)["text"] for line in gzip.open(
        shared / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "rt")][: 100 if quick else 697]
    rates = {}
    for name, fn in (("quality", quality_score), ("nsfw", nsfw_score), ("hate", hate_score)):
        fn(docs[0])
        started = time.perf_counter()
        for d in docs:
            fn(d)
        rates[name] = len(docs) / (time.perf_counter() - started)
    return "\n".join([
        "## Classifiers (default models shipped in filters/models/)", "",
        "| model | held-out set | AUC |", "|---|---|---:|",
        f"| sieve-hate | Davidson et al. 2017, class-balanced, {n_hate} tweets (card's split) | {hate_auc:.3f} |",
        f"| sieve-quality | WikiText-2 + WCXB article text vs CC text, {n_quality} pieces (card's split) | {quality_auc:.3f} |",
        "", f"Throughput on {len(docs)} real CC documents (first 5,000 characters each), one core: "
        + ", ".join(f"{k} {v:.0f} docs/s" for k, v in rates.items()) + ".", ""])
