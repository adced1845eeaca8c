"""Dedup at scale (`make bench-scale`, not part of `make bench`: the 10M run takes a while).

For each size, a synthetic corpus from bench/corpus.py (signature mode at 100k, 1M, 10M documents,
text mode at 100k; cached under the work directory) goes through the dedup stage
`pipeline.stages.dedup.run_dedup` in a fresh driver subprocess (one embedded Ray per size), which
reports wall time, its own peak RSS, and what the stage's stats say about its tasks (stats["scale"]:
task_peak_rss_mb, bytes_spilled; "n/a" when the stage does not report them). The driver also samples
the RSS of its Ray worker processes from /proc every 0.25 s (shared object-store pages they touch
included), as an outside view of the largest task.

Precision and recall of the planted duplicates come from the stage's outputs against truth.parquet:
precision = removed documents whose survivor is in their own planted cluster / all removed;
recall = removed planted members / (cluster size - 1) summed over the clusters whose minimum pairwise
Jaccard is >= the threshold (0.8): the chain guard only removes a member similar to its cluster's
survivor itself, so clusters planted as chains (some pair below 0.8) are shown apart, not counted.
Recall is also given per bucket of the cluster's minimum pairwise Jaccard (exact clusters apart).

    python -m bench.bench_scale [--sizes 100k 1M 10M] [--text-sizes 100k] [--quick] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import corpus as corpus_mod
from bench.common import descendants

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
THRESHOLD = 0.8
BUCKETS = [(0.80, 0.85), (0.85, 0.90), (0.90, 0.95), (0.95, 1.0)]
DEFAULT_SIZES = ["100k", "1M", "10M"]
DEFAULT_TEXT_SIZES = ["100k"]
QUICK_SIZES, QUICK_TEXT_SIZES = ["3k"], ["1k"]
TARGETS = ("driver peak RSS flat within 2x from the smallest to the largest size; time ~linear; "
           f"P >= 0.99, R >= 0.97 of planted duplicates at Jaccard >= {THRESHOLD}")


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "kmg" else text) * scale)


def files_for(docs: int) -> int:
    """About 62.5k documents a file, at least 8 files (the stage runs one task per file)."""
    return max(8, docs // 62_500) if docs >= 8 else 1


# ---------------------------------------------------------------- scoring

def bucket_name(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}{']' if high >= 1 else ')'}"


def score(truth: pa.Table, removed: pa.Table, threshold: float = THRESHOLD) -> dict:
    """Precision / recall of the planted duplicates (see the module docstring).

    truth: doc_id, cluster_id, kind, cluster_min_pairwise_jaccard (bench/corpus.py truth.parquet);
    removed: doc_id, survivor_id (dedup/removed.parquet)."""
    planted = truth.filter(pc.is_valid(truth.column("cluster_id")))
    cluster = planted.column("cluster_id").to_numpy().astype(np.int64)
    ids, cluster = np.unique(cluster, return_inverse=True)
    n_clusters = len(ids)
    size = np.bincount(cluster, minlength=n_clusters)
    min_pairwise = np.ones(n_clusters)
    np.minimum.at(min_pairwise, cluster, planted.column("cluster_min_pairwise_jaccard").to_numpy(zero_copy_only=False))
    exact = np.zeros(n_clusters, bool)
    exact[cluster[pc.equal(planted.column("kind"), "exact").to_numpy(zero_copy_only=False)]] = True

    def cluster_of(doc_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
        index = pc.index_in(doc_ids, value_set=planted.column("doc_id").combine_chunks())
        found = pc.is_valid(index).to_numpy(zero_copy_only=False)
        return np.where(found, cluster[pc.fill_null(index, 0).to_numpy(zero_copy_only=False)], -1)

    doc_cluster = cluster_of(removed.column("doc_id"))
    survivor_cluster = cluster_of(pc.fill_null(removed.column("survivor_id"), ""))
    correct = (doc_cluster >= 0) & (doc_cluster == survivor_cluster)
    removed_ok = np.minimum(np.bincount(doc_cluster[correct], minlength=n_clusters), size - 1)
    should = size - 1
    counted = min_pairwise >= threshold

    def recall(mask: np.ndarray) -> dict:
        want, got = int(should[mask].sum()), int(removed_ok[mask].sum())
        return {"clusters": int(mask.sum()), "should_go": want, "removed": got,
                "recall": got / want if want else None}

    buckets = {"exact": recall(exact & counted)}
    for low, high in BUCKETS:
        buckets[bucket_name(low, high)] = recall(~exact & (min_pairwise >= low) &
                                                 ((min_pairwise < high) if high < 1 else True))
    buckets[f"< {threshold:.2f} (chains, not counted)"] = recall(~exact & ~counted)
    n_removed = removed.num_rows
    overall = recall(counted)
    return {"removed": n_removed, "correct": int(correct.sum()), "false": int(n_removed - correct.sum()),
            "precision": float(correct.sum() / n_removed) if n_removed else None,
            "recall": overall["recall"], "should_go": overall["should_go"], "removed_planted": overall["removed"],
            "near_recall": recall(~exact & counted)["recall"], "buckets": buckets}


def score_run(corpus_dir: Path, out_dir: Path) -> dict:
    truth = pq.read_table(corpus_dir / "truth.parquet",
                          columns=["doc_id", "cluster_id", "kind", "cluster_min_pairwise_jaccard"])
    removed = pq.read_table(out_dir / "dedup" / "removed.parquet", columns=["doc_id", "reason", "survivor_id"])
    result = score(truth, removed)
    curated = sum(pq.ParquetFile(p).metadata.num_rows for p in sorted((out_dir / "curated").glob("*.parquet")))
    result["curated"] = curated
    result["accounted"] = curated + removed.num_rows == truth.num_rows
    result["removed_by_reason"] = {r["values"]: r["counts"] for r in
                                   pc.value_counts(removed.column("reason")).to_pylist()}
    return result


# ---------------------------------------------------------------- the driver subprocess

def _rss_kb(pid: int, field: str = "VmRSS:") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class WorkerSampler(threading.Thread):
    """Largest RSS seen among this process's Ray worker descendants (process title `ray::...`)."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak_kb, self._halt = interval, 0, threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.is_set():
            for pid in descendants(me):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::"):
                    self.peak_kb = max(self.peak_kb, _rss_kb(pid))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def partitions_for(docs: int) -> int:
    """Shuffle partitions grow with the corpus (about 500k documents each, at least 4), so that
    what one task holds stays bounded: the driver holds nothing per document either way."""
    return max(4, docs // 500_000)


def bench_config(out: Path, mode: str, num_cpus: int | None = None, partitions: int = 4):
    from pipeline.config import parse_config

    dedup: dict = {"near": {"partitions": partitions}}
    if mode == "signature":  # no text to check, nor lines (see bench/corpus.py)
        dedup = {"near": {"verify_with": "signature", "partitions": partitions}, "line": {"enabled": False}}
    return parse_config({"input": {"paths": ["unused"]},
                         "run": {"progress": False, **({"num_cpus": num_cpus} if num_cpus else {})},
                         "filters": {"minhash": {"num_perm": 128}}, "dedup": dedup, "output": {"path": str(out)}})


def drive(corpus_dir: Path, out_dir: Path, mode: str) -> dict:
    """In the driver subprocess: run the stage on the corpus, measure it."""
    import resource

    from pipeline.stages.dedup import run_dedup

    doc_files = [str(p) for p in sorted((corpus_dir / "documents").glob("*.parquet"))]
    docs = json.loads((corpus_dir / "corpus.json").read_text())["docs"]
    cfg = bench_config(out_dir, mode, partitions=partitions_for(docs))
    sampler = WorkerSampler()
    sampler.start()
    started = time.time()
    stats = run_dedup(cfg, str(out_dir), doc_files)
    wall = time.time() - started
    sampler.stop()
    scale = stats.get("scale") or {}
    return {"wall_s": wall, "stage_seconds": stats.get("seconds"), "phase_seconds": stats.get("phase_seconds"),
            "driver_vmhwm_mb": _rss_kb(os.getpid(), "VmHWM:") / 1024,
            "driver_ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_sampled_peak_mb": sampler.peak_kb / 1024,
            "task_peak_rss_mb": scale.get("task_peak_rss_mb"), "bytes_spilled": scale.get("bytes_spilled"),
            "docs_in": stats.get("docs_in"), "docs_out": stats.get("docs_out"),
            "removed_by_reason": stats.get("removed_by_reason"), "near": stats.get("near"), "scale": scale}


# ---------------------------------------------------------------- the harness

def ensure_corpus(work: Path, mode: str, docs: int, shared: Path, seed: int = 0, log=print) -> Path:
    """The cached corpus, generated when absent (corpus.json is written last)."""
    path = work / f"corpus-{mode}-{docs}-s{seed}"
    info = path / "corpus.json"
    want = {"mode": mode, "docs": docs, "seed": seed, "files": files_for(docs)}
    if info.exists() and all(json.loads(info.read_text()).get(k) == v for k, v in want.items()):
        return path
    shutil.rmtree(path, ignore_errors=True)
    started = time.time()
    corpus_mod.generate(docs, mode, path, files_for(docs), seed, shared=shared)
    log(f"[bench-scale] generated {mode} {docs:,} docs in {time.time() - started:.0f} s: {path}")
    return path


def measure(corpus_dir: Path, out_dir: Path, mode: str) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)  # a finished stage's marker would be reused
    proc = subprocess.run([sys.executable, "-m", "bench.bench_scale", "--drive", str(corpus_dir), str(out_dir), mode],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(score_run(corpus_dir, out_dir))
    return result


def _fmt(value, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def _label(docs: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if docs >= scale and docs % (scale // 10) == 0:
            return f"{docs / scale:g}{unit}"
    return str(docs)


def report(results: list[tuple[str, int, dict]], quick: bool) -> str:
    lines = ["## dedup at scale", "",
             ("--quick: smoke sizes, numbers not meaningful. " if quick else "") +
             "Synthetic corpora from `bench/corpus.py` (signature mode: MinHash-model signatures, "
             "`verify_with: signature`, line dedup off; text mode: real sentences, word-edited near copies, "
             "stage defaults), 5% exact and 10% near copies, clusters of 2-5, 5% of near clusters planted as "
             "chains. One driver subprocess with an embedded Ray per row.", "",
             f"Targets: {TARGETS}.", "",
             "| corpus | docs | wall s | docs/s | driver peak RSS MB | ru_maxrss MB | largest task RSS MB "
             "(stats) | worker RSS MB (sampled) | bytes spilled | P | R (J >= 0.8) | false removals |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, docs, r in results:
        if "error" in r:
            lines.append(f"| {mode} | {docs:,} | FAILED: {' '.join(r['error'].split())[:300]} |")
            continue
        lines.append(f"| {mode} | {docs:,} | {r['wall_s']:.1f} | {docs / r['wall_s']:,.0f} | "
                     f"{r['driver_vmhwm_mb']:.0f} | {r['driver_ru_maxrss_mb']:.0f} | {_fmt(r['task_peak_rss_mb'])} | "
                     f"{r['worker_sampled_peak_mb']:.0f} | {_fmt(r['bytes_spilled'], ',')} | "
                     f"{_fmt(r['precision'], '.4f')} | {_fmt(r['recall'], '.4f')} | {r['false']:,} |")
    lines += ["", "Recall per bucket of the cluster's minimum pairwise Jaccard (removed / should go):", ""]
    names = list(next((r["buckets"] for _, _, r in results if "buckets" in r), {}))
    lines += ["| corpus | docs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for mode, docs, r in results:
        if "buckets" in r:
            cells = [f"{_fmt(b['recall'], '.4f')} ({b['removed']:,}/{b['should_go']:,})" for b in r["buckets"].values()]
            lines.append(f"| {mode} | {docs:,} | " + " | ".join(cells) + " |")
    phases = list(dict.fromkeys(k for _, _, r in results for k in (r.get("phase_seconds") or {})))
    if phases:
        lines += ["", "Stage phases (seconds, from the stage's stats):", "",
                  "| corpus | docs | " + " | ".join(phases) + " |", "|---|---:|" + "---:|" * len(phases)]
        for mode, docs, r in results:
            if r.get("phase_seconds"):
                lines.append(f"| {mode} | {docs:,} | " +
                             " | ".join(_fmt(r["phase_seconds"].get(k), ".1f") for k in phases) + " |")
    sig = [(docs, r) for mode, docs, r in results if mode == "signature" and "wall_s" in r]
    if len(sig) >= 2:
        (d0, r0), (d1, r1) = sig[0], sig[-1]
        rss = r1["driver_vmhwm_mb"] / r0["driver_vmhwm_mb"]
        time_ratio = r1["wall_s"] / r0["wall_s"]
        lines += ["", f"Signature mode {_label(d0)} -> {_label(d1)} ({d1 / d0:g}x documents): driver peak RSS "
                  f"x{rss:.1f} (target <= 2: {'met' if rss <= 2 else 'NOT met'}), wall time x{time_ratio:.1f} "
                  f"(target at most ~x{d1 / d0:g}, linear: {'met' if time_ratio <= 1.25 * d1 / d0 else 'NOT met'})."]
    met = [r for _, _, r in results if "precision" in r]
    if met:
        p_ok = all((r["precision"] or 0) >= 0.99 for r in met)
        r_ok = all((r["recall"] or 0) >= 0.97 for r in met)
        lines.append(f"P >= 0.99 in every run: {'met' if p_ok else 'NOT met'}; "
                     f"R >= 0.97 in every run: {'met' if r_ok else 'NOT met'}.")
    lines += ["", "Driver peak RSS is VmHWM of the driver process; ru_maxrss also counts the parent's pages at "
              "fork. Sampled worker RSS includes the object-store pages a worker maps. Wall time includes "
              "starting Ray (~5 s)."]
    return "\n".join(lines) + "\n"


def run(shared_data: Path, work_dir: Path, quick: bool, sizes: list[str] | None = None,
        text_sizes: list[str] | None = None, log=lambda m: print(m, file=sys.stderr, flush=True)) -> str:
    """The `bench/run.py` interface: a Markdown section."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    sizes = sizes if sizes is not None else (QUICK_SIZES if quick else DEFAULT_SIZES)
    text_sizes = text_sizes if text_sizes is not None else (QUICK_TEXT_SIZES if quick else DEFAULT_TEXT_SIZES)
    if not Path(shared_data).is_dir():
        text_sizes = []
    runs = [("signature", parse_size(s)) for s in sizes] + [("text", parse_size(s)) for s in text_sizes]
    results = []
    for mode, docs in runs:
        try:
            corpus_dir = ensure_corpus(work_dir, mode, docs, Path(shared_data), log=log)
            log(f"[bench-scale] dedup {mode} {docs:,} ...")
            result = measure(corpus_dir, work_dir / f"out-{mode}-{docs}", mode)
            log(f"[bench-scale] {mode} {docs:,}: {result['wall_s']:.0f} s, driver {result['driver_vmhwm_mb']:.0f} MB, "
                f"P {_fmt(result['precision'], '.4f')} R {_fmt(result['recall'], '.4f')}")
        except Exception as exc:  # noqa: BLE001 - one failing size must not hide the others
            result = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"[bench-scale] {mode} {docs:,} FAILED: {exc}")
        (work_dir / f"result-{mode}-{docs}.json").write_text(json.dumps(result, indent=1, default=str))
        results.append((mode, docs, result))
    return report(results, quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drive", nargs=3, metavar=("CORPUS", "OUT", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--shared", default=os.environ.get("SIEVE_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--work", default=str(BENCH_DIR / "work" / "scale"))
    parser.add_argument("--sizes", nargs="*", help=f"signature-mode sizes (default {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--text-sizes", nargs="*", help=f"text-mode sizes (default {' '.join(DEFAULT_TEXT_SIZES)})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, numbers not meaningful")
    parser.add_argument("--out", help="also write the Markdown section to this file")
    args = parser.parse_args(argv)
    if args.drive:
        corpus_dir, out_dir, mode = args.drive
        print(json.dumps(drive(Path(corpus_dir), Path(out_dir), mode), default=str))
        return 0
    body = run(Path(args.shared), Path(args.work), args.quick, args.sizes, args.text_sizes)
    print(body)
    Path(args.out or Path(args.work) / "results-scale.md").write_text(body)
    if not args.quick and not args.out:
        replace_section(BENCH_DIR / "results.md", body)
    return 0


def replace_section(results: Path, body: str) -> None:
    """Put this section into bench/results.md in place of the previous one (or at the end); the
    other sections, written by `make bench`, stay as they are."""
    title = body.lstrip().splitlines()[0]
    text = results.read_text() if results.exists() else ""
    start = text.find(title + "\n")
    if start < 0:
        results.write_text(text.rstrip("\n") + "\n\n" + body.strip() + "\n")
        return
    end = text.find("\n## ", start + len(title))
    results.write_text(text[:start] + body.strip() + "\n" + (text[end:] if end >= 0 else ""))


if __name__ == "__main__":
    sys.exit(main())
