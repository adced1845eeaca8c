"""Held-out AUC of the default quality, hate-speech and NSFW models, and classifier throughput;
for hate and NSFW also the per-source in-domain and leave-one-source-out AUCs beside the word-list
baseline, the deobfuscation cost, and the thresholds at 1% of the real web pages."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np

from filters.quality import quality_score
from filters.toxicity import hate_score, nsfw_score
from bench.common import realweb_pages
from filters.train import recipe_heldout, roc_auc, transfer_report

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
    lines += toxicity_transfer(shared, docs, quick)
    return "\n".join(lines)


# The fraction of real web pages (bench/realweb-*.warc.gz: WCXB, trafilatura, HPLT, DCLM and CC
# pages, taken as clean) that the configured thresholds may remove; the cards state the procedure.
PAGE_RATE = 0.01


def toxicity_transfer(shared: Path, docs: list[str], quick: bool) -> list[str]:
    """Per-source transfer of sieve-hate and sieve-nsfw, the deobfuscation cost on real CC text,
    and the thresholds that remove PAGE_RATE of the real web pages."""
    from filters.deobfuscate import deobfuscate
    from filters.extract import html_to_text

    wordlist = shared / "toxicity/wordlists/ldnoobw_en.txt"
    lines = ["### Hate and NSFW across sources (ROC-AUC; word-list baseline = distinct LDNOOBW terms)", "",
             "| model | source | in-domain | word list | leave-one-source-out | word list | rows (pos/neg) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for model, only in (("sieve-hate", ("olid",)), ("sieve-nsfw", ())):
        report = transfer_report(MODELS / f"{model}.metrics.json", shared, wordlist, only)
        for name, loso in report["leave_one_out"].items():
            ind = report["in_domain"][name]
            lines.append(f"| {model} | {name} | {ind['auc']:.3f} | {ind['wordlist_auc']:.3f} | {loso['auc']:.3f} | "
                         f"{loso['wordlist_auc']:.3f} | {loso['positive']}/{loso['negative']} |")
        for name, res in report["evaluated_only"].items():
            lines.append(f"| {model} | {name} (evaluated only) | {res['auc']:.3f} | {res['wordlist_auc']:.3f} | | | "
                         f"{res['positive']}/{res['negative']} |")
    started = time.perf_counter()
    changed = sum(deobfuscate(d[:5000]) is not d[:5000] for d in docs)
    per_doc = (time.perf_counter() - started) / len(docs) * 1e6
    lines += ["", f"deobfuscate-v1 on the same {len(docs)} CC documents (first 5,000 characters): {per_doc:.0f} µs/doc, "
              f"{changed} documents needed a closer look (the rest pass the one-regex precheck)."]
    pages = [t for t in (html_to_text(html, encoding=charset) for _, html, charset in
                         realweb_pages(shared, limit=200 if quick else None)) if t]
    lines += ["", f"Thresholds removing {PAGE_RATE:.0%} of {len(pages)} real web pages (bench/realweb-*.warc.gz):"]
    for key, fn in (("max_nsfw", nsfw_score), ("max_hate", hate_score)):
        scores = np.array([fn(t) for t in pages])
        lines.append(f"- `filters.toxicity.{key}`: {np.quantile(scores, 1 - PAGE_RATE):.3f} "
                     f"(pages above 0.5: {np.mean(scores > 0.5):.1%})")
    return lines + [""]
