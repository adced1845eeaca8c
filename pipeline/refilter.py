"""Re-decide a finished run with new thresholds, from its stored signals only.

    python -m pipeline.refilter --from out/sample --set quality.min_score=0.6 --out out/sample-q06

No model runs and no WARC is read: the documents and rejected documents of OUT (with their
signals) are decided again with the new config, written to OUT2, and the global stages (dedup,
tokenize with OUT's tokenizer) finish the new run. A filter whose signals were not stored (it
was not configured in OUT) cannot be applied: that is refused with a clear message. Loosening a
threshold can bring documents back only if OUT kept its rejected documents (output.keep_rejected).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from filters import FILTERS
from filters.gopher import split_combined_params
from pipeline import storage
from pipeline.annotate import BASE_FIELDS, REASON_FIELD
from pipeline.config import ConfigError, SieveConfig, apply_override, parse_config
from pipeline.decide import build_filters, decide
from pipeline.logs import driver_log
from pipeline.run import finish_run, prepare_output, print_summary

NON_SIGNAL = {f.name for f in BASE_FIELDS} | {REASON_FIELD.name}


class RefilterError(RuntimeError):
    pass


def _qualify(assignment: str) -> str:
    """`quality.min_score=0.6` -> `filters.quality.min_score=0.6` (filter names are a shorthand)."""
    key = assignment.split("=", 1)[0]
    return f"filters.{assignment}" if key.split(".", 1)[0] in FILTERS else assignment


def refilter_config(source: str, overrides: list[str], out: str) -> tuple[SieveConfig, SieveConfig]:
    """(config of the stored run, new config writing to `out`)."""
    stored = storage.read_json(storage.join(source, "config.json"))
    raw_old = stored["config"]
    if isinstance(raw_old.get("filters"), dict):  # a run from before Gopher's repetition rules had their own filter
        raw_old = {**raw_old, "filters": split_combined_params(raw_old["filters"])}
    old = parse_config(raw_old, f"{source}/config.json")
    raw = old.dump()
    for assignment in overrides:
        apply_override(raw, _qualify(assignment))
    raw["output"]["path"] = out
    raw["output"]["overwrite"] = False
    tokenizer_dir = storage.join(source, "tokenizer")
    if raw["tokenizer"]["enabled"] and not raw["tokenizer"]["path"] and storage.exists(storage.join(tokenizer_dir, "vocab.json")):
        raw["tokenizer"]["path"] = tokenizer_dir  # same tokens as OUT: comparable counts, no retraining
    new = parse_config(raw, "refilter")
    missing = [name for name in new.filters if new.filters[name].enabled and name not in old.filters]
    if missing:
        raise RefilterError(f"{source} has no stored signals for filter(s) {missing}: they were not configured "
                            "in that run; rerun the pipeline with them instead of refiltering")
    return old, new


def refilter_file(source: str, out: str, stem: str, cfg: SieveConfig) -> dict[str, Any]:
    """Re-decide one input's documents; writes OUT2/documents, rejected, stats for that stem."""
    filters = build_filters(cfg)
    parts = []
    for sub in ("documents", "rejected"):
        path = storage.join(source, sub, f"{stem}.parquet")
        if storage.exists(path):
            table = storage.read_parquet(path)
            if REASON_FIELD.name in table.column_names:
                table = table.drop_columns([REASON_FIELD.name])
            parts.append(table)
    stats = storage.read_json(storage.join(source, "stats", f"{stem}.json"))
    filter_prefixes = tuple(f"{name}:" for name in FILTERS)
    removed = {r: n for r, n in stats["removed"].items() if not r.startswith(filter_prefixes)}
    kept_table = rejected_table = None
    if parts:
        table = pa.concat_tables(parts, promote_options="default")
        signal_names = [c for c in table.column_names if c not in NON_SIGNAL]
        signals = table.select(signal_names).to_pylist()
        reasons = [decide(filters, row) for row in signals]
        keep_mask = pa.array([r is None for r in reasons], pa.bool_())
        kept_table = table.filter(keep_mask)
        rejected_table = table.filter(pc.invert(keep_mask)).append_column(
            REASON_FIELD, pa.array([r for r in reasons if r is not None], pa.string()))
        for reason in reasons:
            if reason is not None:
                removed[reason] = removed.get(reason, 0) + 1
    stats = {**stats, "kept": kept_table.num_rows if kept_table is not None else 0, "removed": removed,
             "config_hash": cfg.hash(), "refiltered_from": source}
    if kept_table is not None:
        storage.write_parquet(kept_table, storage.join(out, "documents", f"{stem}.parquet"))
        if cfg.output.keep_rejected:
            storage.write_parquet(rejected_table, storage.join(out, "rejected", f"{stem}.parquet"))
    storage.atomic_write_json(storage.join(out, "stats", f"{stem}.json"), stats)
    return stats


def refilter(source: str, overrides: list[str], out: str) -> dict[str, Any]:
    started = time.time()
    old, cfg = refilter_config(source, overrides, out)
    if not old.output.keep_rejected:
        print(f"note: {source} did not keep rejected documents; only tighter thresholds take effect",
              file=sys.stderr)
    prepare_output(cfg)
    stems = [p.rsplit("/", 1)[-1].removesuffix(".json") for p in storage.listdir(storage.join(source, "stats"), ".json")]
    with driver_log(cfg):
        t0 = time.time()
        file_stats = [refilter_file(source, out, stem, cfg) for stem in stems]
        return finish_run(cfg, len(stems), file_stats, {"refilter": time.time() - t0}, started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.refilter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, help="output directory of a finished run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="new value, e.g. quality.min_score=0.6 or filters.language.allowed=[en,de]")
    parser.add_argument("--out", required=True, help="new output directory")
    args = parser.parse_args(argv)
    try:
        summary = refilter(args.source, args.overrides, args.out)
    except (ConfigError, RefilterError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
