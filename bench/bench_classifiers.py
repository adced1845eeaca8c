"""Held-out AUC of the default quality, hate-speech and NSFW models, and classifier throughput;
for hate and NSFW also the per-source in-domain and leave-one-source-out AUCs beside the word-list
baseline, the deobfuscation cost, and the thresholds at 1% of the real web pages."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np

from filters.classifier import load_classifier
from filters.quality import DEFAULT_MAX_CHARS, quality_score
from filters.toxicity import hate_score, nsfw_score
from bench.common import realweb_pages
from filters.train import leave_one_source_out, recipe_heldout, roc_auc, transfer_report

MODELS = Path(__file__).resolve().parents[1] / "filters/models"


def quality_text_model(text: str) -> float:
    """P(high) of sieve-quality's text model alone (what its recipe holds out and reports)."""
    return load_classifier("sieve-quality").probability(text, "high", DEFAULT_MAX_CHARS)


SCORERS = {"sieve-quality": quality_text_model, "sieve-hate": hate_score, "sieve-nsfw": nsfw_score}
HELD_OUT = {"sieve-quality": "text model: WikiText-2 + WCXB article/doc + FineWeb-Edu (LLM score >= 3) vs CC text + WCXB listing/product/collection/service",
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
    lines += quality_section(shared, quick)
    lines += ["", f"Throughput on {len(docs)} real CC documents (first 5,000 characters each), one core: "
              + ", ".join(f"{k} {v:.0f} docs/s" for k, v in rates.items()) + ".", ""]
    lines += toxicity_transfer(shared, docs, quick)
    return "\n".join(lines)


# ---------------------------------------------------------------- quality: human judgments, cross-source, thresholds

REALWEB_KEEP = {"configs/cc.yaml": 0.5, "configs/sample.yaml": 0.8}  # share of English realweb pages kept


def _bootstrap(scores: np.ndarray, baseline: np.ndarray, truth: np.ndarray, rounds: int = 2000
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% bootstrap intervals (documents resampled, seed 0) of the AUC and of its gain over `baseline`."""
    rng = np.random.default_rng(0)
    aucs, gains = [], []
    for _ in range(rounds):
        i = rng.integers(0, len(truth), len(truth))
        if truth[i].all() or not truth[i].any():
            continue
        auc = roc_auc(scores[i], truth[i])
        aucs.append(auc)
        gains.append(auc - roc_auc(baseline[i], truth[i]))
    interval = lambda xs: tuple(float(v) for v in np.percentile(xs, [2.5, 97.5]))  # noqa: E731
    return interval(aucs), interval(gains)


def _dev_rows(shared: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Table rows of sieve-quality on the human-judged dev pages, beside length alone, and the
    dev scores (for the threshold lines)."""
    rows, scores = [], {}
    for split, name in (("majority", "majority_dev.jsonl"), ("unanimous", "agreement_dev.jsonl")):
        records = [json.loads(line) for line in open(shared / "quality/dclm-human-dev" / name)]
        texts = [r["text"] for r in records]
        truth = np.array([int(r["label"]) == 1 for r in records])
        combined = np.array([quality_score(t) for t in texts])
        text_only = np.array([quality_text_model(t) for t in texts])
        length = np.log1p([len(t) for t in texts])
        (low, high), (gain_low, gain_high) = _bootstrap(combined, length, truth)
        rows.append(f"| {split} | {len(texts)} ({int(truth.sum())} high) | **{roc_auc(combined, truth):.3f}** "
                    f"[{low:.3f}, {high:.3f}] | {roc_auc(text_only, truth):.3f} | {roc_auc(length, truth):.3f} | "
                    f"{roc_auc(combined, truth) - roc_auc(length, truth):+.3f} [{gain_low:+.3f}, {gain_high:+.3f}] |")
        scores[split] = (combined, truth)
    return rows, scores


def _english_realweb_scores(shared: Path, quick: bool) -> np.ndarray:
    """sieve-quality scores of the English realweb bench pages, extracted as the pipeline does."""
    from filters.extract import html_to_text
    from filters.language import identify_language

    out = []
    for _, html, charset in realweb_pages(shared, limit=150 if quick else None):
        text = html_to_text(html, encoding=charset)
        if text and (lambda lang: lang[0] == "en" and lang[1] >= 0.65)(identify_language(text)):
            out.append(quality_score(text))
    return np.array(out)


def quality_section(shared: Path, quick: bool) -> list[str]:
    """sieve-quality: in-domain held-out AUC, leave-one-source-out AUC, human-judged dev AUC beside
    length alone, and the min_score that keeps a stated share of English realweb pages."""
    pos_label, held = recipe_heldout(MODELS / "sieve-quality.metrics.json", shared)
    truth = np.array([ex.label == pos_label for ex in held])
    lines = ["", "### sieve-quality against human judgments (DCLM annotation study, dev part)", "",
             "| judged pages | documents | sieve-quality AUC [95% CI] | text model alone | length alone (log chars) "
             "| gain over length [95% CI] |", "|---|---:|---:|---:|---:|---:|"]
    dev_rows, dev_scores = _dev_rows(shared)
    lines += dev_rows
    lines += ["", f"In-domain hold-out (its recipe's {len(held)} held-out 200-word pieces, split by document): text model "
              f"{roc_auc([quality_text_model(ex.text) for ex in held], truth):.3f}, combined "
              f"{roc_auc([quality_score(ex.text) for ex in held], truth):.3f} (pieces are length-balanced)."]
    if quick:
        lines.append("Cross-source (leave one input out): not run with --quick.")
    else:
        recipe = json.loads((MODELS / "sieve-quality.metrics.json").read_text())["recipe"][3:]
        lines += ["", "Cross-source: the text model retrained without one source, scored on all of that source's "
                  "pieces against the other class's held-out pieces:", "",
                  "| left out | class | its pieces | AUC |", "|---|---|---:|---:|"]
        lines += [f"| `{row['left_out']}` | {row['label']} | {row['pieces']} | {row['auc']:.3f} |"
                  for row in leave_one_source_out(recipe, shared)]
    realweb = _english_realweb_scores(shared, quick)
    lines += ["", f"`filters.quality.min_score` = the score that keeps a stated share of the {len(realweb)} English "
              "realweb bench pages (extracted by Sieve, lid176 en >= 0.65), and what it keeps of the judged pages:"]
    for config, keep in REALWEB_KEEP.items():
        threshold = round(float(np.quantile(realweb, 1 - keep)), 2)
        combined, judged = dev_scores["majority"]
        kept = combined >= threshold
        lines.append(f"- {config}: keep {keep:.0%} of realweb -> min_score {threshold:.2f}; keeps {kept[judged].mean():.0%} "
                     f"of the majority-high and {kept[~judged].mean():.0%} of the majority-low dev pages")
    return lines


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
