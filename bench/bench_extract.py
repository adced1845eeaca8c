"""Read + extract throughput (pipeline vs bare resiliparse vs trafilatura) and extraction P/R/F1 per dev set and page type."""
from __future__ import annotations

import json
import os
import re
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Callable

from bench.common import realweb_files, realweb_pages, time_per_item, token_f1, wcxb_pages
from filters.extract import html_to_text

_WORD = re.compile(r"\w+", re.UNICODE)  # the tokens of bench.common.token_f1


def _bare_resiliparse(page: tuple[str, bytes, str | None]) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    html = page[1]
    return extract_plain_text(bytes_to_str(html, detect_encoding(html)), main_content=True)


def _trafilatura(page: tuple[str, bytes, str | None]) -> str | None:
    import trafilatura

    return trafilatura.extract(page[1], include_comments=False, include_tables=True)


def _pipeline_docs_per_s(files: list[Path], work: Path) -> tuple[float, int, int]:
    """process_warc (read + classify + decode + extract, no filters) in this process: one core."""
    from pipeline.config import parse_config
    from pipeline.stages.annotate import process_warc

    out = tempfile.mkdtemp(dir=work)
    cfg = parse_config({"input": {"paths": [str(f) for f in files]}, "dedup": {"enabled": False},
                        "tokenizer": {"enabled": False}, "output": {"path": out, "keep_rejected": False}})
    docs = records = 0
    started = time.perf_counter()
    for i, path in enumerate(files):
        stats = process_warc(str(path), f"f{i}", cfg, out)
        docs += stats["documents"]
        records += stats["records"]
    return time.perf_counter() - started, docs, records


def run(shared: Path, work: Path, quick: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    files = realweb_files(shared)[: 1 if quick else None]
    _pipeline_docs_per_s(files[:1], work)  # first-call set-up (imports, tables) outside the timing
    pipe_s, pipe_docs, _ = _pipeline_docs_per_s(files, work)
    pages = realweb_pages(shared, limit=60 if quick else None)
    n_traf = 40 if quick else min(len(pages), 400)
    ours_s, n = time_per_item(lambda p: html_to_text(p[1], encoding=p[2]), pages)
    bare_s, _ = time_per_item(_bare_resiliparse, pages)
    traf_pages = pages[:n_traf]
    traf_s, _ = time_per_item(_trafilatura, traf_pages)
    ours_sub_s, _ = time_per_item(lambda p: html_to_text(p[1], encoding=p[2]), traf_pages)

    pipe_rate, ours_rate, bare_rate = pipe_docs / pipe_s, n / ours_s, n / bare_s
    traf_rate, ours_sub_rate = n_traf / traf_s, n_traf / ours_sub_s
    lines = [
        "## Read + extract throughput (docs/s per core)",
        "",
        f"Input: {len(files)} file(s) of `bench/realweb-*.warc.gz` ({pipe_docs} HTML documents, "
        f"{sum(len(p[1]) for p in pages) / 2**20:.0f} MB of HTML in the in-memory comparisons). "
        "Single process, one core; the pipeline task is timed after one warm-up file (first-call set-up excluded).",
        "",
        "| what | docs/s per core | ratio to bare resiliparse |",
        "|---|---:|---:|",
        f"| Sieve pipeline task (stream WARC, classify, charset, extract, write Parquet) | {pipe_rate:.0f} | {pipe_rate / bare_rate:.2f} |",
        f"| Sieve `html_to_text` (charset detection + resiliparse), pages in memory | {ours_rate:.0f} | {ours_rate / bare_rate:.2f} |",
        f"| bare resiliparse `extract_plain_text` (ceiling), pages in memory | {bare_rate:.0f} | 1.00 |",
        f"| trafilatura `extract` (first {n_traf} pages; Sieve on the same pages: {ours_sub_rate:.0f}/s) | {traf_rate:.0f} | {traf_rate / bare_rate:.2f} |",
        "",
        f"Sieve extraction is {ours_sub_rate / traf_rate:.1f}x trafilatura's speed on the same pages; the "
        f"whole pipeline task reaches {pipe_rate / bare_rate:.0%} of the bare-extraction ceiling.",
        "",
    ]
    lines += _f1_section(shared, quick, work)
    return "\n".join(lines)


def _prf(predicted: str | None, truth: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 (the bag-of-words measure of `token_f1`)."""
    pred = Counter(_WORD.findall((predicted or "").lower()))
    gold = Counter(_WORD.findall(truth.lower()))
    if not pred or not gold:
        same = float(pred == gold)
        return same, same, same
    overlap = sum((pred & gold).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / sum(pred.values()), overlap / sum(gold.values())
    return precision, recall, token_f1(predicted, truth)


def _trafilatura_eval_pages(shared: Path, work: Path) -> list[tuple[bytes, list[str], list[str]]]:
    """(html, with snippets, without snippets) of html/trafilatura-eval, its archive unpacked in `work`."""
    root = shared / "html" / "trafilatura-eval"
    unpacked = work / "trafilatura-eval"
    if not (unpacked / "tests").is_dir():
        unpacked.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / "trafilatura_eval_cache_html.tar.xz") as tar:
            tar.extractall(unpacked, filter="data")
    pages = []
    for entry in json.loads((root / "evaldata.json").read_text()).values():
        for sub in ("eval", "cache"):
            path = unpacked / "tests" / sub / entry["file"]
            if path.exists():
                pages.append((path.read_bytes(), entry.get("with", []), entry.get("without", [])))
                break
    return pages


def _snippet_counts(predicted: str | None, must: list[str], must_not: list[str]) -> tuple[int, int, int]:
    """(found `with`, missed `with`, found `without`) snippets, whitespace-normalised (trafilatura's eval)."""
    text = " ".join((predicted or "").split())
    found = sum(" ".join(s.split()) in text for s in must)
    return found, len(must) - found, sum(" ".join(s.split()) in text for s in must_not)


EXTRACTORS: dict[str, Callable[[bytes], str | None]] = {
    "Sieve `html_to_text`": lambda html: html_to_text(html),
    "bare resiliparse": lambda html: _bare_resiliparse(("", html, None)),
    "trafilatura": lambda html: _trafilatura(("", html, None)),
}


def _f1_section(shared: Path, quick: bool, work: Path | None = None) -> list[str]:
    work = work or Path(tempfile.mkdtemp())
    meta = json.loads((shared / "html" / "wcxb-dev" / "metadata.json").read_text())["files"]
    pages = wcxb_pages(shared, limit=60 if quick else None)
    traf_pages = _trafilatura_eval_pages(shared, work)[: 60 if quick else None]
    types = sorted({meta[pid]["page_type"] for pid, _, _ in pages})
    lines = [
        "## Extraction quality: WCXB dev (token P/R/F1) and trafilatura-eval (snippets)",
        "",
        f"{len(pages)} pages of `html/wcxb-dev` (ground truth `main_content`; WCXB, Murrough Foley 2026, CC-BY-4.0): "
        "bag-of-words P/R/F1 of lowercased word tokens, mean over pages. "
        f"{len(traf_pages)} pages of `html/trafilatura-eval`: `with` snippets found (TP) or missed (FN), `without` "
        "snippets found (FP), counted over the corpus. docs/s: one core, both sets, the extractor's calls only "
        "(scoring excluded).",
        "",
        "| extractor | wcxb F1 | P | R | " + " | ".join(types) + " | traf-eval F1 | P | R | docs/s |",
        "|---|" + "---:|" * (len(types) + 7),
    ]
    rates: dict[str, float] = {}
    for name, fn in EXTRACTORS.items():
        by_type: dict[str, list[tuple[float, float, float]]] = {t: [] for t in types}
        extract_s = 0.0  # the extractor's calls only: scoring the text is the bench's cost, not the extractor's
        for pid, html, truth in pages:
            started = time.perf_counter()
            text = fn(html)
            extract_s += time.perf_counter() - started
            by_type[meta[pid]["page_type"]].append(_prf(text, truth))
        tp = fn_ = fp = 0
        for html, must, must_not in traf_pages:
            started = time.perf_counter()
            text = fn(html)
            extract_s += time.perf_counter() - started
            a, b, c = _snippet_counts(text, must, must_not)
            tp, fn_, fp = tp + a, fn_ + b, fp + c
        rate = rates[name] = (len(pages) + len(traf_pages)) / extract_s
        scores = [s for v in by_type.values() for s in v]
        p_all, r_all, f_all = (mean(s[i] for s in scores) for i in range(3))
        tp_p, tp_r = tp / max(1, tp + fp), tp / max(1, tp + fn_)
        tf = 2 * tp_p * tp_r / (tp_p + tp_r) if tp_p + tp_r else 0.0
        cells = " | ".join(f"{mean(s[2] for s in by_type[t]):.3f}" if by_type[t] else "-" for t in types)
        lines.append(f"| {name} | {f_all:.3f} | {p_all:.3f} | {r_all:.3f} | {cells} | {tf:.3f} | {tp_p:.3f} | "
                     f"{tp_r:.3f} | {rate:.0f} |")
    names = list(EXTRACTORS)
    lines += ["", f"On these dev pages {names[0]} is {rates[names[0]] / rates['trafilatura']:.1f}x trafilatura's docs/s "
              f"(bare resiliparse {rates['bare resiliparse'] / rates['trafilatura']:.1f}x).", ""]
    return lines


if __name__ == "__main__":
    import sys

    print(run(Path(sys.argv[1]), Path(os.environ.get("TMPDIR", "/tmp")) / "bench-extract", "--quick" in sys.argv))
