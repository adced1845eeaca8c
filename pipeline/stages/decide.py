"""Decide from signals: the configured filters' thresholds, first failing rule wins.

Shared by the annotate task (deciding right after computing) and `pipeline.refilter`
(re-deciding stored signals with new thresholds, without running any model).

Unless `annotate.all_signals`, a removed document skipped the filters after the one that removed
it, so its stored signals are partial: re-deciding it is exact as long as it fails no later than
before; one that a looser threshold lets through to a filter it skipped cannot be decided
(`MissingSignals`), and is never decided as if that filter had passed it.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters import DocFilter, filter_class, registry
from pipeline.config import SieveConfig

log = logging.getLogger("sieve.decide")


class MissingSignals(ValueError):
    """A document reaches a filter whose signals were never computed for it (skipped after an
    earlier removal, `annotate.all_signals: false`); the message names the input and filter."""


def build_filters(cfg: SieveConfig) -> list[DocFilter]:
    """The enabled filters, in run order (models load lazily, so this is cheap)."""
    return [filter_class(name)(params) for name, params in cfg.filters.items() if params.enabled]


def decide(filters: list[DocFilter], signals: Mapping[str, Any]) -> str | None:
    """None to keep the document, else the first failing filter's reason (in run order).
    Raises MissingSignals when it reaches a filter whose signals `signals` lack."""
    for doc_filter in filters:
        if not doc_filter.has_signals(signals):
            raise MissingSignals(doc_filter.name)
        reason = doc_filter.decide(signals)
        if reason is not None:
            return reason
    return None


def redecide_or_annotate(input_path: str, stem: str, cfg: SieveConfig, out: str) -> dict[str, Any]:
    """The resume path's decide task: re-decide `out`'s stored signals of one input in place, or,
    when some document would now reach a filter it skipped (`MissingSignals`), annotate the
    input again: never decide on signals that were not computed."""
    try:
        return redecide_input(out, stem, cfg, out)
    except MissingSignals as exc:
        from pipeline.stages.annotate import process_warc

        log.warning("%s: annotating again instead of re-deciding: %s", input_path, exc)
        return {**process_warc(input_path, stem, cfg, out), "annotated_instead": True}


def redecide_input(source: str, stem: str, cfg: SieveConfig, out: str) -> dict[str, Any]:
    """The decide stage of one input: re-decide its stored documents (kept and rejected, with
    their signals) under `cfg`'s thresholds and write documents/, rejected/ and stats/ of `out`.

    No model runs and no input is read. `source` is the run directory holding the signals: `out`
    itself on a rerun, another run's directory for `pipeline.refilter`. Rewriting in place keeps
    every document in documents/ or rejected/ at every moment (rejected/ first gets the union of
    old and new rejections), so a task killed midway loses nothing: the next attempt reads both
    files and drops the copies by doc_id.
    """
    from pipeline import storage
    from pipeline.stages.annotate import REASON_FIELD, document_schema
    from pipeline.stages.fingerprint import decide_fingerprint

    opts = cfg.input.storage_options
    filters = build_filters(cfg)
    stats = storage.read_json(storage.join(source, "stats", f"{stem}.json"), opts)
    paths = {sub: storage.join(source, sub, f"{stem}.parquet") for sub in ("documents", "rejected")}
    parts = [storage.read_parquet(path, storage_options=opts) for path in paths.values() if storage.exists(path, opts)]
    parts = [t.drop_columns([REASON_FIELD.name]) if REASON_FIELD.name in t.column_names else t for t in parts]
    filter_prefixes = tuple(f"{name}:" for name in registry())
    removed = {r: n for r, n in stats["removed"].items() if not r.startswith(filter_prefixes)}
    schema = document_schema(filters, all_signals=cfg.annotate.all_signals)
    table = pa.concat_tables(parts, promote_options="default") if parts else schema.empty_table()
    _, first = np.unique(np.asarray(table.column("doc_id").to_pylist(), dtype=object), return_index=True)
    table = table.take(pa.array(np.sort(first)))  # a copy left by a killed rewrite counts once
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{paths['documents']}: no stored signals {missing} for the configured filters")
    table = table.select(schema.names).cast(schema)
    # List columns (MinHash signatures) are read only to tell whether a filter ran: as validity.
    signal_fields = [f for doc_filter in filters for f in doc_filter.signal_schema()]
    rows = table.select([f.name for f in signal_fields if not pa.types.is_list(f.type)]).to_pylist()
    for field in signal_fields:
        if pa.types.is_list(field.type):
            for row, valid in zip(rows, table.column(field.name).is_valid().to_pylist()):
                row[field.name] = valid or None
    reasons = []
    for doc_id, row in zip(table.column("doc_id").to_pylist(), rows):
        try:
            reasons.append(decide(filters, row))
        except MissingSignals as exc:
            raise MissingSignals(
                f"{paths['documents']}: document {doc_id} would now reach filter {exc} (and maybe others), whose "
                f"signals were never computed for it: {source} ran with annotate.all_signals: false, so a document "
                "removed by one filter skipped the later ones. Rerun the pipeline with annotate.all_signals: true "
                "to refilter with looser thresholds") from None
    keep = pa.array([r is None for r in reasons], pa.bool_())
    kept = table.filter(keep)
    rejected = table.filter(pc.invert(keep)).append_column(
        REASON_FIELD, pa.array([r for r in reasons if r is not None], pa.string()))
    for reason in reasons:
        if reason is not None:
            removed[reason] = removed.get(reason, 0) + 1
    target = {sub: storage.join(out, sub, f"{stem}.parquet") for sub in ("documents", "rejected")}
    if source == out and cfg.output.keep_rejected and len(parts) == 2:
        union = pa.concat_tables([rejected, kept.append_column(REASON_FIELD, pa.nulls(kept.num_rows, pa.string()))])
        storage.write_parquet(union, target["rejected"], opts)
    storage.write_parquet(kept, target["documents"], opts)
    if cfg.output.keep_rejected:
        storage.write_parquet(rejected, target["rejected"], opts)
    else:
        storage.remove_file(target["rejected"], opts)
    signals = stats.get("fingerprints", {}).get("signals")  # None: written before fingerprints existed
    stats = {**stats, "kept": kept.num_rows, "removed": removed, "config_hash": cfg.hash(),
             "keep_rejected": cfg.output.keep_rejected,
             "fingerprints": {"signals": signals, "decide": decide_fingerprint(cfg, filters, signals)}}
    if source != out:
        stats["refiltered_from"] = source
        error_log = storage.join(source, "logs", f"{stem}.jsonl")
        if storage.exists(error_log, opts):  # the new run reports the same read errors
            storage.atomic_write_bytes(storage.join(out, "logs", f"{stem}.jsonl"), storage.read_bytes(error_log, opts), opts)
    storage.atomic_write_json(storage.join(out, "stats", f"{stem}.json"), stats, opts)
    return stats
