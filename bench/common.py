"""Inputs and measures shared by the benchmarks: real pages from ../shared/data, token F1, timing."""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from pipeline.inputs.warc import RawRecord, iter_records

_WORD = re.compile(r"\w+", re.UNICODE)


def realweb_files(shared: Path) -> list[Path]:
    return sorted((shared / "bench").glob("realweb-*.warc.gz"))


def realweb_pages(shared: Path, limit: int | None = None) -> list[tuple[str, bytes, str | None]]:
    """(url, html bytes, declared charset) of the HTML responses in bench/realweb-*.warc.gz."""
    pages: list[tuple[str, bytes, str | None]] = []
    for path in realweb_files(shared):
        for rec in iter_records(lambda p=path: open(p, "rb")):
            if isinstance(rec, RawRecord) and rec.record_type == "response" and rec.http_status == 200:
                pages.append((rec.target_uri, rec.read_payload(1 << 30), rec.charset))
                if limit and len(pages) >= limit:
                    return pages
    return pages


def wcxb_pages(shared: Path, limit: int | None = None) -> list[tuple[str, bytes, str]]:
    """(id, html bytes, ground-truth main text) of the WCXB dev pages."""
    root = shared / "html" / "wcxb-dev"
    out = []
    for gt_path in sorted((root / "ground-truth").glob("*.json")):
        gt = json.loads(gt_path.read_text())
        html = gzip.decompress((root / "html" / f"{gt_path.stem}.html.gz").read_bytes())
        truth = gt["ground_truth"].get("main_content")
        if not truth:  # a few pages have no main-content ground truth: nothing to score against
            continue
        out.append((gt_path.stem, html, truth))
        if limit and len(out) >= limit:
            break
    return out


def token_f1(predicted: str | None, truth: str) -> float:
    """Bag-of-words F1 between an extraction and the ground truth (lowercased \\w+ tokens)."""
    pred = Counter(_WORD.findall((predicted or "").lower()))
    gold = Counter(_WORD.findall(truth.lower()))
    if not pred or not gold:
        return float(pred == gold)
    overlap = sum((pred & gold).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(pred.values()), overlap / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


def time_per_item(fn: Callable[[object], object], items: Iterable[object]) -> tuple[float, int]:
    """(seconds, count) to apply fn to every item, single-threaded."""
    items = list(items)
    started = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - started, len(items)


# Peak RSS of the current process image: /proc's VmHWM is reset by exec, unlike ru_maxrss, which on
# Linux keeps the high-water mark of the parent that forked the child (every child would report the
# benchmark driver's own peak).
PEAK_RSS_CODE = ("\nprint('RSS', next(int(l.split()[1]) for l in open('/proc/self/status') "
                 "if l.startswith('VmHWM:')))")


def run_measured(code: str) -> list[str]:
    """Run `code` in a fresh Python; its stdout words, ending with 'RSS <peak kB>'."""
    proc = subprocess.run([sys.executable, "-c", code + PEAK_RSS_CODE], capture_output=True, text=True, check=True)
    return proc.stdout.split()


def peak_mb(words: list[str]) -> float:
    return int(words[words.index("RSS") + 1]) / 1024


def descendants(root: int) -> list[int]:
    """PIDs below `root` in the process tree (a process's own embedded Ray: raylet, workers)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found
