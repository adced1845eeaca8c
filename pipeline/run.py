"""Sieve's main job: WARC files -> curated documents -> dedup -> tokenizer + token shards.

    python -m pipeline.run --config configs/sample.yaml
    python pipeline/run.py --config configs/cc.yaml --set input.limit=2
    ray job submit --working-dir . -- python pipeline/run.py --config configs/cc.yaml

Runs on an embedded local Ray unless `run.ray_address` or RAY_ADDRESS names a cluster (as
`ray job submit` does). One Ray task per WARC file, a bounded number in flight. Rerunning the same
config into the same output directory resumes: finished inputs and stages are skipped.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    # `python pipeline/run.py` (as `ray job submit` runs it): import the `pipeline` package from this
    # checkout (the uploaded working dir), not from wherever it may also be installed.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import logging
import time
from typing import Any, Iterable

from pipeline import storage  # noqa: E402
from pipeline.config import ConfigError, SieveConfig, load_config  # noqa: E402
from pipeline.inputs.warc import InputError, resolve_inputs, unique_stems  # noqa: E402
from pipeline.report.logs import driver_log  # noqa: E402
from pipeline.report.stats import RunTotals  # noqa: E402
from pipeline.runtime import check_output_reachable, run_input_tasks  # noqa: E402
from pipeline.stages.fingerprint import (  # noqa: E402
    decide_fingerprint,
    decided_fingerprint,
    dedup_fingerprint,
    input_identity,
    matching_marker,
    provenance,
    signals_fingerprint,
)

log = logging.getLogger("sieve")


FILE_SUMMARY_KEYS = ("input", "stem", "status", "records", "kept", "removed", "errors")


class OutputConflict(RuntimeError):
    """The output directory holds a run of a different config."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys are documented in configs/sample.yaml and configs/cc.yaml. "
               "Outputs: documents/, rejected/, stats/, curated/, dedup/, tokenizer/, tokens/, "
               "run.json and report.html under output.path.",
    )
    parser.add_argument("--config", required=True, help="YAML config file (e.g. configs/sample.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value, parsed as YAML (repeatable), "
                             "e.g. --set filters.quality.min_score=0.6")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N input files")
    parser.add_argument("--output", metavar="PATH", help="output directory (overrides output.path)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete an existing output directory written by another config and start fresh")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"input.limit={args.limit}")
    if args.output:
        overrides.append(f"output.path={args.output}")
    if args.overwrite:
        overrides.append("output.overwrite=true")
    if args.no_progress:
        overrides.append("run.progress=false")
    try:
        cfg = load_config(args.config, overrides)
        summary = run_pipeline(cfg)
    except (ConfigError, InputError, OutputConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


def run_pipeline(cfg: SieveConfig) -> dict[str, Any]:
    """Run every stage; returns the run summary that is also written to OUT/run.json."""
    started = time.time()
    opts = cfg.input.storage_options
    inputs = resolve_inputs(cfg.input.paths, cfg.input.paths_listing, cfg.input.base_url,
                            cfg.input.limit, opts)
    if not inputs:
        raise InputError("no input files (input.paths / input.paths_listing matched nothing)")
    check_output_reachable(cfg)
    prepare_output(cfg, unique_stems(inputs).values())
    with driver_log(cfg):
        t0 = time.time()
        file_stats, work = run_annotate(cfg, inputs)
        return finish_run(cfg, len(inputs), file_stats, {"annotate": time.time() - t0}, started, work)


def finish_run(cfg: SieveConfig, n_inputs: int, file_stats: list[dict[str, Any]],
               stage_seconds: dict[str, float], started: float, work: dict[str, int]) -> dict[str, Any]:
    """The global stages (dedup, tokenizer, shards) over the decided inputs, then run.json and the report.

    Shared by `run_pipeline` and `pipeline.refilter`. Each stage is reused when its stored
    fingerprint (see `pipeline.stages.fingerprint`) matches, else redone with everything downstream.
    """
    out, opts = cfg.output.path, cfg.input.storage_options
    totals = RunTotals()
    for stats in file_stats:
        totals.add_file(stats)
    file_rows = [{k: s[k] for k in FILE_SUMMARY_KEYS} for s in file_stats]
    present = set(storage.listdir(storage.join(out, "documents"), ".parquet", opts))
    doc_files = [path for path in (storage.join(out, "documents", f"{s['stem']}.parquet") for s in file_stats)
                 if path in present]
    stages: dict[str, Any] = {}
    reused: list[str] = []
    curated_fp = decided_fingerprint(file_stats)
    curated_files = doc_files
    if cfg.dedup.enabled:
        from pipeline.stages.dedup import run_dedup

        curated_fp = dedup_fingerprint(cfg, curated_fp)
        if matching_marker(storage.join(out, "dedup", "stats.json"), curated_fp, opts) is not None:
            reused.append("dedup")
        t0 = time.time()
        stages["dedup"] = run_dedup(cfg, out, doc_files, curated_fp)
        stage_seconds["dedup"] = time.time() - t0
        totals.remove_kept(stages["dedup"].get("removed_by_reason", {}))
        curated_files = storage.listdir(storage.join(out, "curated"), ".parquet", opts)
    if cfg.tokenizer.enabled:
        from pipeline.stages.encode import run_tokenize, tokenize_fingerprints

        tokenizer_fp, shards_fp = tokenize_fingerprints(cfg, curated_fp)
        reused += [name for name, path, fp in (("tokenizer", ("tokenizer", "tokenizer.json"), tokenizer_fp),
                                               ("tokenize", ("tokens", "manifest.json"), shards_fp))
                   if matching_marker(storage.join(out, *path), fp, opts) is not None]
        t0 = time.time()
        stages["tokenize"] = run_tokenize(cfg, out, curated_files, curated_fp)
        stage_seconds["tokenize"] = time.time() - t0
    totals.check()
    resume: dict[str, Any] = {"stages_reused": reused, "temporaries_removed": remove_temporaries(out, opts), **work}

    summary = {
        "name": cfg.run.name,
        "output": out,
        "config_hash": cfg.hash(),
        "inputs": n_inputs,
        "totals": totals.to_json(),
        "files": file_rows,
        "stages": stages,
        "resume": resume,
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "wall_seconds": round(time.time() - started, 3),
    }
    storage.atomic_write_json(storage.join(out, "run.json"), summary, opts)
    report_path = write_report(cfg, summary)
    if report_path:
        summary["report"] = report_path
    return summary


def remove_temporaries(out: str, storage_options: dict[str, Any] | None = None) -> int:
    """Delete the `.tmp-*` files that tasks or drivers killed mid-write left (readers globbing
    `*.parquet` would choke on them); called when no task of this run is writing any more."""
    fs, root = storage.fs_and_path(out, storage_options)  # a fresh listing (see fs_and_path)
    leftovers = [p for p in fs.find(root) if p.rsplit("/", 1)[-1].startswith(".tmp-")]
    for path in leftovers:
        fs.rm_file(path)
    return len(leftovers)


def write_report(cfg: SieveConfig, summary: dict[str, Any]) -> str | None:
    """OUT/report.html when the report module is available (it needs matplotlib)."""
    try:
        from pipeline.report.page import write_report as _write
    except ImportError:
        return None
    return _write(cfg, summary)


def prepare_output(cfg: SieveConfig, stems: Iterable[str]) -> None:
    """Claim the output directory for this config's inputs (`stems`).

    Any config may rerun into its own output: the stages compare fingerprints. Refused: a
    directory holding outputs of inputs this config does not list (their documents would mix
    into dedup and tokens), unless output.overwrite deletes it first.
    """
    out, opts = cfg.output.path, cfg.input.storage_options
    marker = storage.join(out, "config.json")
    if storage.exists(marker, opts) and cfg.output.overwrite:
        storage.remove_tree(out, opts)
    stored = {p.rsplit("/", 1)[-1].removesuffix(".json") for p in storage.listdir(storage.join(out, "stats"), ".json", opts)}
    others = sorted(stored - set(stems))
    if others:
        raise OutputConflict(
            f"{out} holds outputs of {len(others)} input(s) this config does not list (e.g. {others[0]!r}): "
            f"list them again, choose another output.path (--output), or pass --overwrite to delete it and start fresh.")
    storage.makedirs(out, opts)
    # Not key-sorted: the order of `filters` is meaningful (refilter reads it back).
    storage.atomic_write_json(marker, {"config_hash": cfg.hash(), "config": cfg.dump()}, opts, sort_keys=False)


def plan_inputs(cfg: SieveConfig, inputs: list[str], stems: dict[str, str]
                ) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """(stats of the inputs reused as they are, inputs to re-decide, inputs to annotate).

    An input is reused when its completion marker `stats/<stem>.json` (written last by its task)
    has status "ok", its documents file exists and its signals fingerprint equals the current one
    (same input file, extraction, filter provenance and `annotate.all_signals`): then it is
    re-decided only if the thresholds changed, or annotated again if the rejected documents
    needed for that were not kept, or if some document would now reach a filter it skipped
    (`redecide_or_annotate`). A "failed" input (could not be opened or read to the end) is redone: the cause may
    have been transient.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.stages.decide import build_filters

    out, opts = cfg.output.path, cfg.input.storage_options
    markers = set(storage.listdir(storage.join(out, "stats"), ".json", opts))
    documents = set(storage.listdir(storage.join(out, "documents"), ".parquet", opts))
    candidates = [p for p in inputs if storage.join(out, "stats", f"{stems[p]}.json") in markers
                  and storage.join(out, "documents", f"{stems[p]}.parquet") in documents]

    def look(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        stored = storage.read_json(storage.join(out, "stats", f"{stems[path]}.json"), opts)
        return stored, input_identity(path, opts, cfg.input.timeout_s)

    with ThreadPoolExecutor(max_workers=16) as pool:  # thousands of small reads on object storage
        looked = dict(zip(candidates, pool.map(look, candidates)))
    filters = build_filters(cfg)
    filter_provenance = provenance(filters)
    reused: dict[str, dict[str, Any]] = {}
    redecide: list[str] = []
    for path, (stored, identity) in looked.items():
        fingerprints = stored.get("fingerprints", {})
        if stored.get("input") != path or stored.get("status") != "ok":
            continue
        signals = signals_fingerprint(cfg, filter_provenance, identity)
        if fingerprints.get("signals") != signals:
            continue
        if fingerprints.get("decide") == decide_fingerprint(cfg, filters, signals):
            reused[path] = stored
        elif stored.get("keep_rejected"):
            redecide.append(path)
    annotate = [p for p in inputs if p not in reused and p not in redecide]
    return reused, redecide, annotate


def run_annotate(cfg: SieveConfig, inputs: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Annotate (or only re-decide) every input whose outputs are not up to date; returns the
    stats of every input, in input order, and how many inputs took each path."""
    stems = unique_stems(inputs)
    results, redecide, annotate = plan_inputs(cfg, inputs, stems)
    work = {"annotate_tasks_run": len(annotate), "decide_tasks_run": len(redecide),
            "annotate_inputs_reused": len(results)}
    if annotate or redecide:
        from pipeline.stages.annotate import process_warc
        from pipeline.stages.decide import redecide_or_annotate

        jobs = [(path, process_warc, path, stems[path]) for path in annotate]
        jobs += [(path, redecide_or_annotate, path, stems[path]) for path in redecide]
        results.update(run_input_tasks(cfg, jobs, "annotate"))
        annotated_instead = sum(bool(results[p].pop("annotated_instead", False)) for p in redecide)
        work["annotate_tasks_run"] += annotated_instead
        work["decide_tasks_run"] -= annotated_instead
    return [results[p] for p in inputs], work


def print_summary(summary: dict[str, Any]) -> None:
    totals = summary["totals"]
    removed, errors = totals["removed"], totals["errors"]
    rows = [("input records", totals["records"]), ("documents extracted", totals["documents"]),
            ("kept by filters", totals["kept_by_filters"]), ("kept after dedup", totals["kept"])]
    by_filter: dict[str, int] = {}
    for reason, n in removed.items():
        head = reason.split(":", 1)[0]
        if ":" in reason and head not in ("record", "http_status", "extract", "dedup"):
            by_filter[head] = by_filter.get(head, 0) + n
    dedup_removed = sum(n for r, n in removed.items() if r.startswith("dedup:"))
    tok = summary["stages"].get("tokenize", {})
    if tok:
        rows.append(("tokens", tok.get("total_tokens", tok.get("tokens", "?"))))
    width = max(len(r[0]) for r in rows)
    print(f"\nSieve run '{summary['name']}' -> {summary['output']}  ({summary['wall_seconds']:.1f} s)")
    print("-" * (width + 14))
    for label, value in rows:
        print(f"{label:<{width}}  {value:>10}")
    print("-" * (width + 14))
    print("removed by filter:" if by_filter else "removed by filter: none")
    for name, n in sorted(by_filter.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<{width - 2}}  {n:>10}")
    if dedup_removed:
        print(f"  {'dedup':<{width - 2}}  {dedup_removed:>10}")
    print("removed before extraction / empty:")
    for reason, n in removed.items():
        if not any(reason.startswith(p + ":") for p in list(by_filter) + ["dedup"]):
            print(f"  {reason:<{width - 2}}  {n:>10}")
    print(f"errors (each with its offset in {summary['output']}/logs/):" if errors else "errors: none")
    for reason, n in errors.items():
        print(f"  {reason:<{width - 2}}  {n:>10}")
    total = totals["kept"] + sum(removed.values()) + sum(errors.values())
    print(f"accounting: kept {totals['kept']} + removed {sum(removed.values())} + errors "
          f"{sum(errors.values())} = {total} of {totals['records']} records")
    print(f"outputs: {summary['output']}/documents (filtered), curated/ (deduplicated), tokens/, run.json")
    if summary.get("report"):
        print(f"report:  {summary['report']}")


if __name__ == "__main__":
    sys.exit(main())
