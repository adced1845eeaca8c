"""The dedup stage on Ray: exact, near-duplicate (MinHash LSH) and boilerplate-line removal.

    documents/*.parquet --scan (1 task / file)--> per-doc numbers (text hash, quality, length),
        band keys and line keys, each shuffled by key into P partitions (object refs)
    driver: exact dedup on the normalized-text hash (and URL)
    band partitions --candidates (P tasks)--> pairs from colliding buckets (each member with the
        bucket's first few members: linear in the bucket size)
    documents --fetch (1 task / file)--> signatures or shingle sets of paired docs, by partition
        --verify (P tasks)--> only pairs with Jaccard >= threshold become edges
    driver: connected components of the edges (scipy; 16 bytes per edge)
    components of 3+ --fetch + split (P tasks)--> a member is removed only if similar to its
        survivor itself, so chains A~B~C never merge A and C
    line partitions --boilerplate (P tasks)--> lines in more than N surviving docs
    documents --write (1 task / file, streamed)--> curated/*.parquet

Every task holds one file or one partition, never the corpus; the driver holds a few numbers per
document (hashes, rank, survivor, and the doc_id/url/warc_file strings as Arrow arrays) and the
candidate pairs. Survivors do not depend on the partition count: buckets, verification and the
survivor order (cfg.dedup.near.survivor, then doc_id) are all partition-independent.
Resumable: a finished stage leaves dedup/stats.json with the config hash, and a rerun returns it.
"""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filters.dedup import (
    MinHasher,
    MinHashParams,
    band_keys,
    bucket_pairs,
    candidate_probability,
    components_in_rank_order,
    connected_components,
    distinct_line_keys,
    exact_jaccard,
    lsh_params,
    remove_lines,
    shingle_hashes,
    split_component,
    text_hash,
    url_keys,
)
from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.runtime import init_ray

REASON_EXACT, REASON_URL, REASON_NEAR, REASON_EMPTY = (
    "dedup:exact", "dedup:url", "dedup:near", "dedup:empty_after_line_dedup")
REASONS = ["", REASON_URL, REASON_EXACT, REASON_NEAR, REASON_EMPTY]  # code -> reason ("" = kept)
REMOVED_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("warc_file", pa.string()),
                            ("reason", pa.string()), ("cluster_id", pa.int64()), ("survivor_id", pa.string())])
_CLUSTER_MEMBERS_SHOWN = 20


@dataclass(frozen=True)
class DedupPlan:
    """Everything a dedup task needs (small and picklable: shipped to every Ray task)."""

    minhash: MinHashParams
    bands: int
    rows: int
    partitions: int
    bucket_hubs: int
    threshold: float
    verify_with: str
    by_url: bool
    line_enabled: bool
    min_line_chars: int
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SieveConfig) -> "DedupPlan":
        near = cfg.dedup.near
        params = cfg.filters.get("minhash") or MinHashParams()
        num_perm = params.num_perm
        if near.num_bands is None and near.rows_per_band is None:
            bands, rows = lsh_params(near.threshold, num_perm, near.target_recall)
        else:
            bands = near.num_bands or num_perm // near.rows_per_band
            rows = near.rows_per_band or num_perm // near.num_bands
        if bands < 1 or rows < 1 or bands * rows > num_perm:
            raise ValueError(f"dedup.near.num_bands ({near.num_bands}) x dedup.near.rows_per_band "
                             f"({near.rows_per_band}) must fit in filters.minhash.num_perm ({num_perm})")
        return cls(minhash=params, bands=bands, rows=rows, partitions=near.partitions, bucket_hubs=near.bucket_hubs,
                   threshold=near.threshold,
                   verify_with=near.verify_with, by_url=cfg.dedup.by_url, line_enabled=cfg.dedup.line.enabled,
                   min_line_chars=cfg.dedup.line.min_line_chars, storage_options=dict(cfg.input.storage_options))

    def hasher(self) -> MinHasher:
        p = self.minhash
        return MinHasher(p.num_perm, p.seed, p.ngram, p.scheme)


# ---------------------------------------------------------------- tasks (run on Ray workers)

def _schema(path: str, opts: dict[str, Any]) -> pa.Schema:
    fs, p = storage.fs_and_path(path, opts)
    with fs.open(p, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow


def _schema_names(path: str, opts: dict[str, Any]) -> list[str]:
    return _schema(path, opts).names


def _signatures(table: pa.Table, path: str, plan: DedupPlan) -> np.ndarray:
    """(n, num_perm) uint32 signatures from the `minhash` column, or computed from the text when
    the documents were annotated without the minhash filter."""
    num_perm, n = plan.minhash.num_perm, table.num_rows
    if "minhash" not in table.column_names:
        hasher = plan.hasher()
        return np.stack([hasher.signature(t) for t in table.column("text").to_pylist()]) if n else \
            np.zeros((0, num_perm), dtype=np.uint32)
    column = table.column("minhash").combine_chunks()
    if column.null_count:
        raise ValueError(f"{path}: {column.null_count} documents have no minhash signature")
    flat = np.asarray(column.flatten(), dtype=np.uint32)
    if len(flat) != n * num_perm:
        raise ValueError(f"{path}: minhash signatures hold {len(flat) / max(n, 1):g} values per document, "
                         f"config filters.minhash.num_perm is {num_perm}")
    return flat.reshape(n, num_perm)


def _by_partition(keys: np.ndarray, values: np.ndarray, partitions: int) -> list[np.ndarray]:
    """(2, k) uint64 arrays [keys; values], one per partition (partition = key mod P)."""
    part = (keys % np.uint64(partitions)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    stacked = np.stack([keys[order], values[order].astype(np.uint64)])
    return [stacked[:, bounds[p]: bounds[p + 1]] for p in range(partitions)]


def scan_file(path: str, file_index: int, plan: DedupPlan) -> tuple:
    """Map task over one documents file: (meta, *band partitions, *line partitions).

    meta holds the per-document numbers the driver needs; band partitions hold (bucket key, gid)
    and line partitions (line key, gid), gid = file_index << 32 | row."""
    opts = plan.storage_options
    names = _schema_names(path, opts)
    missing = {"doc_id", "text"} - set(names)
    if missing:
        raise ValueError(f"{path}: not a documents file, columns {sorted(missing)} missing")
    columns = [c for c in ("doc_id", "url", "warc_file", "text", "minhash", "text_hash", "quality_score") if c in names]
    table = storage.read_parquet(path, columns=columns, storage_options=opts)
    n = table.num_rows
    texts = table.column("text")
    gids = (np.int64(file_index) << np.int64(32)) | np.arange(n, dtype=np.int64)
    empty = pa.array([""] * n, pa.string())
    urls = pc.fill_null(table.column("url").combine_chunks(), "") if "url" in names else empty
    meta = {
        "doc_id": table.column("doc_id").combine_chunks().cast(pa.string()),
        "url": urls,
        "warc_file": table.column("warc_file").combine_chunks() if "warc_file" in names else empty,
        "text_hash": (table.column("text_hash").to_numpy().astype(np.uint64) if "text_hash" in names
                      else np.fromiter((text_hash(t) for t in texts.to_pylist()), np.uint64, count=n)),
        "url_hash": url_keys(urls.to_pylist()) if plan.by_url else np.zeros(n, np.uint64),
        "quality": (np.nan_to_num(table.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64),
                                  nan=-np.inf) if "quality_score" in names else np.zeros(n)),
        "length": pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64) if n else np.zeros(0, np.int64),
    }
    keys = band_keys(_signatures(table, path, plan), plan.bands, plan.rows)
    band_parts = _by_partition(keys.reshape(-1), np.repeat(gids, plan.bands), plan.partitions)
    if plan.line_enabled:
        per_doc = [distinct_line_keys(t, plan.min_line_chars) for t in texts.to_pylist()]
        line_keys = np.fromiter((k for ks in per_doc for k in ks), dtype=np.uint64)
        line_gids = np.repeat(gids, [len(ks) for ks in per_doc])
    else:
        line_keys, line_gids = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return (meta, *band_parts, *_by_partition(line_keys, line_gids, plan.partitions))


def earlier_table(path: str, removed: np.ndarray, columns: list[str], plan: DedupPlan) -> pa.Table:
    """The documents of an earlier run's documents file that its dedup kept (`removed` = doc_ids in
    its dedup/removed.parquet), only `columns`: the same rows, in the same order, for every caller."""
    names = _schema_names(path, plan.storage_options)
    missing = {"doc_id", "minhash", "text_hash"} - set(names)
    if missing:
        raise ValueError(f"{path}: dedup.against needs the minhash filter's columns, {sorted(missing)} missing")
    table = storage.read_parquet(path, columns=list(dict.fromkeys(["doc_id", *columns])),
                                 storage_options=plan.storage_options)
    keep = pc.invert(pc.is_in(table.column("doc_id").cast(pa.string()), value_set=pa.array(removed, pa.string())))
    return table.filter(keep).select(columns)


def scan_earlier(path: str, file_index: int, removed: np.ndarray, plan: DedupPlan) -> tuple:
    """Map task like `scan_file` over one earlier run's documents file, without reading its text:
    no line keys, length 0 (earlier documents rank before every new one anyway)."""
    names = _schema_names(path, plan.storage_options)
    columns = [c for c in ("doc_id", "url", "warc_file", "minhash", "text_hash", "quality_score") if c in names]
    table = earlier_table(path, removed, columns, plan)
    n = table.num_rows
    gids = (np.int64(file_index) << np.int64(32)) | np.arange(n, dtype=np.int64)
    empty = pa.array([""] * n, pa.string())
    urls = pc.fill_null(table.column("url").combine_chunks(), "") if "url" in names else empty
    meta = {
        "doc_id": table.column("doc_id").combine_chunks().cast(pa.string()), "url": urls,
        "warc_file": table.column("warc_file").combine_chunks() if "warc_file" in names else empty,
        "text_hash": table.column("text_hash").to_numpy().astype(np.uint64),
        "url_hash": url_keys(urls.to_pylist()) if plan.by_url else np.zeros(n, np.uint64),
        "quality": np.zeros(n), "length": np.zeros(n, np.int64),
    }
    keys = band_keys(_signatures(table, path, plan), plan.bands, plan.rows)
    band_parts = _by_partition(keys.reshape(-1), np.repeat(gids, plan.bands), plan.partitions)
    no_lines = _by_partition(np.zeros(0, np.uint64), np.zeros(0, np.int64), plan.partitions)
    return (meta, *band_parts, *no_lines)


def partition_candidates(excluded: np.ndarray, hubs: int, *parts: np.ndarray) -> np.ndarray:
    """Reduce task: (gid, gid) candidate pairs from the colliding band buckets of one partition,
    leaving out documents already removed as exact duplicates."""
    data = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    keys, gids = data[0], data[1].astype(np.int64)
    keep = ~np.isin(gids, excluded)
    return bucket_pairs(keys[keep], gids[keep], hubs)


def partition_boilerplate(excluded: np.ndarray, max_repeats: int, *parts: np.ndarray) -> np.ndarray:
    """Reduce task: keys of the lines found in more than `max_repeats` surviving documents."""
    data = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    keys = data[0][~np.isin(data[1].astype(np.int64), excluded)]
    values, counts = np.unique(keys, return_counts=True)
    return values[counts > max_repeats]


@dataclass
class Features:
    """What verification compares for some documents (keyed by global document index): signature
    rows, or shingle sets flattened into `values` with `offsets`."""

    ids: np.ndarray
    values: np.ndarray
    offsets: np.ndarray | None = None


def fetch_features(path: str, first_index: int, plan: DedupPlan, *wanted: np.ndarray) -> list[Features] | Features:
    """Map task: the features of the `wanted` rows of one documents file, one block per partition."""
    column = ["text"] if plan.verify_with == "text" or "minhash" not in _schema_names(path, plan.storage_options) \
        else ["minhash"]
    return _feature_blocks(storage.read_parquet(path, columns=column, storage_options=plan.storage_options),
                           path, first_index, plan, wanted)


def fetch_earlier_features(path: str, removed: np.ndarray, first_index: int, plan: DedupPlan,
                           *wanted: np.ndarray) -> list[Features] | Features:
    """Map task like `fetch_features` over an earlier run's documents file: signatures only."""
    return _feature_blocks(earlier_table(path, removed, ["minhash"], plan), path, first_index, plan, wanted)


def _feature_blocks(table: pa.Table, path: str, first_index: int, plan: DedupPlan,
                    wanted: tuple[np.ndarray, ...]) -> list[Features] | Features:
    rows = np.unique(np.concatenate(wanted))
    table = table.take(pa.array(rows))
    if plan.verify_with == "text":
        sets = [shingle_hashes(t, plan.minhash.ngram) for t in table.column("text").to_pylist()]
    else:
        sigs = _signatures(table, path, plan)
    blocks = []
    for want in wanted:
        pos = np.searchsorted(rows, want)
        if plan.verify_with == "text":
            chosen = [sets[i] for i in pos]
            offsets = np.concatenate(([0], np.cumsum([len(s) for s in chosen]))).astype(np.int64)
            values = np.concatenate(chosen) if chosen else np.zeros(0, np.uint32)
            blocks.append(Features(want + first_index, values, offsets))
        else:
            blocks.append(Features(want + first_index, sigs[pos]))
    return blocks if len(blocks) > 1 else blocks[0]


class _FeatureLookup:
    """Features of one partition's documents, merged from the per-file blocks."""

    def __init__(self, blocks: tuple[Features, ...], threshold: float) -> None:
        self.threshold = threshold
        ids = np.concatenate([b.ids for b in blocks]) if blocks else np.zeros(0, np.int64)
        order = np.argsort(ids)
        self.ids = ids[order]
        self.is_text = bool(blocks) and blocks[0].offsets is not None
        if self.is_text:
            sets = [b.values[b.offsets[i]: b.offsets[i + 1]] for b in blocks for i in range(len(b.ids))]
            self.sets = [sets[i] for i in order]
        else:
            self.sigs = np.concatenate([b.values for b in blocks])[order] if blocks else np.zeros((0, 0), np.uint32)

    def similar(self, center: int, others: np.ndarray) -> np.ndarray:
        c, o = np.searchsorted(self.ids, center), np.searchsorted(self.ids, others)
        if self.is_text:
            return np.array([exact_jaccard(self.sets[c], self.sets[j]) >= self.threshold for j in o], dtype=bool)
        return (self.sigs[o] == self.sigs[c]).sum(axis=1) >= self.threshold * self.sigs.shape[1]

    def verify(self, pairs: np.ndarray) -> np.ndarray:
        if len(pairs) == 0:
            return np.zeros(0, dtype=bool)
        if self.is_text:
            return np.array([self.similar(int(a), np.array([b]))[0] for a, b in pairs], dtype=bool)
        a, b = np.searchsorted(self.ids, pairs[:, 0]), np.searchsorted(self.ids, pairs[:, 1])
        return (self.sigs[a] == self.sigs[b]).sum(axis=1) >= self.threshold * self.sigs.shape[1]


def verify_pairs(pairs: np.ndarray, threshold: float, *blocks: Features) -> np.ndarray:
    """Reduce task: which candidate pairs (global indices) are at or above the threshold."""
    return _FeatureLookup(blocks, threshold).verify(pairs)


def split_components(members: np.ndarray, offsets: np.ndarray, threshold: float, *blocks: Features) -> np.ndarray:
    """Reduce task: survivor of every member of some components (each in survivor order)."""
    lookup = _FeatureLookup(blocks, threshold)
    return np.concatenate([split_component(members[offsets[i]: offsets[i + 1]], lookup.similar)
                           for i in range(len(offsets) - 1)]) if len(offsets) > 1 else np.zeros(0, np.int64)


def write_curated(path: str, out_path: str, removed_rows: np.ndarray, boilerplate: np.ndarray,
                  plan: DedupPlan) -> dict[str, Any]:
    """Write task: one documents file, streamed, without its removed documents and boilerplate
    lines, minus the minhash column, plus `lines_removed`; returns the rows emptied by line removal."""
    opts = plan.storage_options
    schema = _schema(path, opts)
    names = [c for c in schema.names if c != "minhash"]
    out_schema = pa.schema([schema.field(c) for c in names] + [pa.field("lines_removed", pa.int32())])
    text_type = schema.field("text").type
    drop, min_chars = frozenset(boilerplate.tolist()), plan.min_line_chars
    writer = storage.ParquetStreamWriter(out_path, out_schema, opts)
    emptied: list[int] = []
    kept = lines_removed = docs_with_lines_removed = offset = 0
    try:
        for batch in storage.iter_parquet_batches(path, columns=names, storage_options=opts):
            rows = np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows
            keep = ~np.isin(rows, removed_rows)
            table = pa.Table.from_batches([batch.filter(pa.array(keep))])
            results = [remove_lines(t, drop, min_chars) for t in table.column("text").to_pylist()]
            non_empty = np.array([bool(t.strip()) for t, _ in results], dtype=bool)
            emptied.extend(rows[keep][~non_empty].tolist())
            lines_removed += sum(r for _, r in results)
            docs_with_lines_removed += sum(1 for _, r in results if r)
            table = table.set_column(names.index("text"), "text", pa.array([t for t, _ in results], text_type))
            table = table.append_column("lines_removed", pa.array([r for _, r in results], pa.int32()))
            table = table.filter(pa.array(non_empty))
            writer.write_rows(table.to_pydict())
            kept += table.num_rows
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {"kept": kept, "lines_removed": lines_removed, "docs_with_lines_removed": docs_with_lines_removed,
            "emptied_rows": np.array(emptied, dtype=np.int64)}


# ---------------------------------------------------------------- driver

@dataclass
class _Corpus:
    """Per-document state on the driver, in global index order (file by file, row by row)."""

    gid: np.ndarray
    file_start: np.ndarray
    doc_id: pa.Array
    url: pa.Array
    warc_file: pa.Array
    numbers: dict[str, np.ndarray]
    earlier: np.ndarray  # documents of `dedup.against` runs (after this run's): never removed
    rank: np.ndarray = field(init=False)
    survivor: np.ndarray = field(init=False)
    reason: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.gid)
        self.survivor = np.arange(n)
        self.reason = np.zeros(n, dtype=np.int8)

    @property
    def n(self) -> int:
        return len(self.gid)

    @property
    def alive(self) -> np.ndarray:
        return self.reason == 0

    @property
    def n_new(self) -> int:
        return self.n - int(self.earlier.sum())

    def remove(self, indices: np.ndarray, survivors: np.ndarray, reason: str) -> None:
        """Earlier runs' documents always survive: removing one is a no-op."""
        indices, survivors = np.broadcast_arrays(np.asarray(indices), np.asarray(survivors))
        new = ~self.earlier[indices]
        self.survivor[indices[new]] = survivors[new]
        self.reason[indices[new]] = REASONS.index(reason)

    def index_of(self, gids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.gid, gids)

    def file_of(self, indices: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.file_start, indices, side="right") - 1


def _survivor_rank(corpus: _Corpus, policy: list[str]) -> np.ndarray:
    """rank[i] = position of document i in survivor preference (0 = kept first); earlier runs'
    documents come before all of this run's."""
    columns = {"quality": pa.array(corpus.numbers["quality"]), "length": pa.array(corpus.numbers["length"]),
               "doc_id": corpus.doc_id, "index": pa.array(np.arange(corpus.n))}
    order_by = {"quality": "descending", "length": "descending", "doc_id": "ascending"}
    keys = [(k, order_by[k]) for k in dict.fromkeys(list(policy) + ["doc_id"])] + [("index", "ascending")]
    columns["new"] = pa.array(~corpus.earlier)
    keys = [("new", "ascending")] + keys
    order = pc.sort_indices(pa.table(columns), sort_keys=keys).to_numpy()
    rank = np.empty(corpus.n, dtype=np.int64)
    rank[order] = np.arange(corpus.n)
    return rank


def _exact_groups(values: np.ndarray, rank: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(duplicates, their survivors) among `eligible` documents with equal `values` (best rank kept)."""
    idx = np.flatnonzero(eligible)
    order = idx[np.lexsort((rank[idx], values[idx]))]
    if len(order) == 0:
        return order, order
    sorted_values = values[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    heads = np.repeat(order[starts], np.diff(np.append(starts, len(order))))
    dup = heads != order
    return order[dup], heads[dup]


def _split_even(items: list[np.ndarray], partitions: int) -> list[list[np.ndarray]]:
    """Items (arrays) in order, cut into `partitions` runs of about equal total length."""
    total = max(1, sum(len(i) for i in items))
    runs: list[list[np.ndarray]] = [[] for _ in range(partitions)]
    done = 0
    for item in items:
        runs[min(partitions - 1, done * partitions // total)].append(item)
        done += len(item)
    return runs


class _Stage:
    """One run of the dedup stage (driver side)."""

    def __init__(self, ray: Any, cfg: SieveConfig, out: str, doc_files: list[str]) -> None:
        self.ray, self.cfg, self.out, self.doc_files = ray, cfg, out, doc_files
        self.plan = DedupPlan.from_config(cfg)
        self.earlier = _earlier_files(cfg)  # (path, doc_ids its run removed)
        self.seconds: dict[str, float] = {}

    def _timed(self, phase: str, started: float) -> None:
        self.seconds[phase] = round(time.time() - started, 3)

    def scan(self) -> tuple[_Corpus, list[list[Any]], list[list[Any]]]:
        started, P = time.time(), self.plan.partitions
        scan = self.ray.remote(scan_file).options(num_returns=1 + 2 * P)
        refs = [scan.remote(path, i, self.plan) for i, path in enumerate(self.doc_files)]
        scan_old = self.ray.remote(scan_earlier).options(num_returns=1 + 2 * P)
        refs += [scan_old.remote(path, len(self.doc_files) + j, removed, self.plan)
                 for j, (path, removed) in enumerate(self.earlier)]
        metas = self.ray.get([r[0] for r in refs])
        sizes = [len(m["doc_id"]) for m in metas]
        corpus = _Corpus(
            gid=np.concatenate([(np.int64(i) << np.int64(32)) | np.arange(s, dtype=np.int64)
                                for i, s in enumerate(sizes)]) if metas else np.zeros(0, np.int64),
            file_start=np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64) if metas else np.zeros(1, np.int64),
            doc_id=pa.concat_arrays([m["doc_id"] for m in metas]) if metas else pa.array([], pa.string()),
            url=pa.concat_arrays([m["url"].cast(pa.string()) for m in metas]) if metas else pa.array([], pa.string()),
            warc_file=(pa.concat_arrays([m["warc_file"].cast(pa.string()) for m in metas]).dictionary_encode()
                       if metas else pa.array([], pa.string())),
            numbers={k: np.concatenate([m[k] for m in metas]) if metas else np.zeros(0)
                     for k in ("text_hash", "url_hash", "quality", "length")},
            earlier=np.repeat(np.arange(len(sizes)) >= len(self.doc_files), np.asarray(sizes, dtype=np.int64)),
        )
        corpus.rank = _survivor_rank(corpus, list(self.cfg.dedup.near.survivor))
        self._timed("scan", started)
        return corpus, [list(r[1: 1 + P]) for r in refs], [list(r[1 + P:]) for r in refs]

    def exact(self, corpus: _Corpus) -> None:
        started = time.time()
        urls_present = pc.greater(pc.utf8_length(corpus.url), 0).to_numpy(zero_copy_only=False)
        for enabled, key, reason, eligible in ((self.cfg.dedup.by_url, "url_hash", REASON_URL, urls_present),
                                               (self.cfg.dedup.exact, "text_hash", REASON_EXACT, True)):
            if enabled:
                dups, heads = _exact_groups(corpus.numbers[key], corpus.rank, corpus.alive & eligible)
                corpus.remove(dups, heads, reason)
        self._timed("exact", started)

    def _ship_features(self, corpus: _Corpus, wanted: list[np.ndarray]) -> list[list[Any]]:
        """Fetch tasks (one per documents file) sending each partition the features of its
        `wanted` documents (global indices); returns the feature refs of every partition."""
        per_part: list[list[Any]] = [[] for _ in wanted]
        fetch = self.ray.remote(fetch_features).options(num_returns=len(wanted))
        fetch_old = self.ray.remote(fetch_earlier_features).options(num_returns=len(wanted))
        files = [corpus.file_of(w) for w in wanted]
        for f in np.unique(np.concatenate(files)) if wanted else []:
            local = [w[fw == f] - corpus.file_start[f] for w, fw in zip(wanted, files)]
            if f < len(self.doc_files):
                refs = fetch.remote(self.doc_files[f], int(corpus.file_start[f]), self.plan, *local)
            else:
                path, removed = self.earlier[f - len(self.doc_files)]
                refs = fetch_old.remote(path, removed, int(corpus.file_start[f]), self.plan, *local)
            refs = refs if isinstance(refs, list) else [refs]
            for p, (ref, rows) in enumerate(zip(refs, local)):
                if len(rows):
                    per_part[p].append(ref)
        return per_part

    def near(self, corpus: _Corpus, band_refs: list[list[Any]]) -> dict[str, Any]:
        near, P = self.cfg.dedup.near, self.plan.partitions
        started = time.time()
        excluded = self.ray.put(corpus.gid[~corpus.alive])
        reduce = self.ray.remote(partition_candidates)
        parts = self.ray.get([reduce.remote(excluded, self.plan.bucket_hubs, *[refs[p] for refs in band_refs])
                              for p in range(P)])
        pairs = np.unique(corpus.index_of(np.concatenate(parts)), axis=0) if sum(map(len, parts)) else \
            np.zeros((0, 2), np.int64)
        self._timed("candidates", started)

        started = time.time()
        if near.verify and len(pairs):
            chunks = np.array_split(pairs, P)
            feature_refs = self._ship_features(corpus, [np.unique(c) for c in chunks])
            verify = self.ray.remote(verify_pairs)
            ok = np.concatenate(self.ray.get([verify.remote(c, near.threshold, *refs)
                                              for c, refs in zip(chunks, feature_refs)]))
            edges = pairs[ok]
        else:
            edges = pairs
        self._timed("verify", started)

        started = time.time()
        nodes = np.unique(edges)
        labels = connected_components(len(nodes), np.searchsorted(nodes, edges))
        components = [nodes[c] for c in components_in_rank_order(labels, corpus.rank[nodes])]
        chains = [c for c in components if len(c) > 2] if near.verify else []
        for members in components:  # pairs are verified edges; without verify, plain components
            if len(members) == 2 or not near.verify:
                corpus.remove(members[1:], members[0], REASON_NEAR)
        survivors_before = int(corpus.alive.sum())
        if chains:
            runs = _split_even(chains, P)
            feature_refs = self._ship_features(corpus, [np.unique(np.concatenate(r)) if r else np.zeros(0, np.int64)
                                                        for r in runs])
            split = self.ray.remote(split_components)
            jobs = [(np.concatenate(r), np.concatenate(([0], np.cumsum([len(c) for c in r]))))
                    for r in runs if r]
            results = self.ray.get([split.remote(m, o, near.threshold, *refs)
                                    for (m, o), refs in zip(jobs, [f for f, r in zip(feature_refs, runs) if r])])
            for (members, _), centers in zip(jobs, results):
                moved = centers != members
                corpus.remove(members[moved], centers[moved], REASON_NEAR)
        self._timed("cluster", started)
        sizes = [len(c) for c in components]
        return {"candidate_pairs": int(len(pairs)), "verified_edges": int(len(edges)),
                "rejected_candidates": int(len(pairs) - len(edges)), "components": len(components),
                "largest_component": max(sizes, default=0),
                "components_split_by_chain_check": self._chains_split(corpus, chains),
                "removed_in_components_of_3_plus": survivors_before - int(corpus.alive.sum())}

    @staticmethod
    def _chains_split(corpus: _Corpus, chains: list[np.ndarray]) -> int:
        """How many components kept more than one survivor (chains the check refused to merge)."""
        return sum(int(np.count_nonzero(corpus.survivor[c] == c)) > 1 for c in chains)

    def boilerplate(self, corpus: _Corpus, line_refs: list[list[Any]]) -> np.ndarray:
        started = time.time()
        if not self.plan.line_enabled:
            return np.zeros(0, dtype=np.uint64)
        excluded = self.ray.put(corpus.gid[~corpus.alive])
        reduce = self.ray.remote(partition_boilerplate)
        max_repeats = self.cfg.dedup.line.max_repeats
        parts = self.ray.get([reduce.remote(excluded, max_repeats, *[refs[p] for refs in line_refs])
                              for p in range(self.plan.partitions)])
        self._timed("boilerplate", started)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def write(self, corpus: _Corpus, boilerplate: np.ndarray) -> dict[str, int]:
        started = time.time()
        _remove_stale_curated(self.out, self.doc_files, self.plan.storage_options)
        boilerplate_ref = self.ray.put(boilerplate)
        write = self.ray.remote(write_curated)
        removed = np.flatnonzero(~corpus.alive)
        removed_file = corpus.file_of(removed)
        jobs = [write.remote(path, storage.join(self.out, "curated", _file_name(path)),
                             removed[removed_file == f] - corpus.file_start[f], boilerplate_ref, self.plan)
                for f, path in enumerate(self.doc_files)]
        written = self.ray.get(jobs)
        for f, result in enumerate(written):
            emptied = result["emptied_rows"] + corpus.file_start[f]
            corpus.remove(emptied, emptied, REASON_EMPTY)
        self._timed("write", started)
        return {"docs_out": sum(w["kept"] for w in written), "lines_removed": sum(w["lines_removed"] for w in written),
                "docs_with_lines_removed": sum(w["docs_with_lines_removed"] for w in written)}


def _earlier_files(cfg: SieveConfig) -> list[tuple[str, np.ndarray]]:
    """Every documents file of the `dedup.against` runs with the doc_ids their dedup removed
    (read from dedup/removed.parquet): what they curated, without reading any text."""
    opts, files = cfg.input.storage_options, []
    for run in cfg.dedup.against:
        if not storage.exists(storage.join(run, "dedup", "stats.json"), opts):
            raise ValueError(f"dedup.against: {run} has no finished dedup stage (dedup/stats.json missing)")
        removed = storage.read_parquet(storage.join(run, "dedup", "removed.parquet"), columns=["doc_id"],
                                       storage_options=opts).column("doc_id").to_numpy(zero_copy_only=False)
        paths = storage.listdir(storage.join(run, "documents"), ".parquet", opts)
        if not paths:
            raise ValueError(f"dedup.against: {run} has no documents/*.parquet")
        files += [(path, removed.astype(object)) for path in paths]
    return files


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _remove_stale_curated(out: str, doc_files: list[str], opts: dict[str, Any]) -> None:
    """Curated files left by an earlier run for documents files not in this run are deleted,
    so curated/ holds exactly this run's output (the tokenize stage lists the directory)."""
    expected = {_file_name(p) for p in doc_files}
    for path in storage.listdir(storage.join(out, "curated"), ".parquet", opts):
        if _file_name(path) not in expected:
            fs, p = storage.fs_and_path(path, opts)
            fs.rm(p)


def _final_survivors(corpus: _Corpus) -> np.ndarray:
    """Survivor per document after all steps: a document removed in favour of one that a later
    step removed (URL -> exact -> near) points to where that chain ends."""
    survivor = corpus.survivor.copy()
    for _ in range(len(REASONS)):
        survivor = survivor[survivor]
    survivor[corpus.reason == REASONS.index(REASON_EMPTY)] = -1
    return survivor


def _write_removed(out: str, corpus: _Corpus, survivor: np.ndarray, opts: dict[str, Any]) -> None:
    removed = np.flatnonzero(~corpus.alive)
    has_survivor = survivor[removed] >= 0
    cluster_id = pa.array(np.where(has_survivor, survivor[removed], 0), mask=~has_survivor)
    survivor_id = pc.if_else(pa.array(has_survivor), corpus.doc_id.take(pa.array(np.maximum(survivor[removed], 0))),
                             pa.scalar(None, pa.string()))
    table = pa.table({
        "doc_id": corpus.doc_id.take(pa.array(removed)), "url": corpus.url.take(pa.array(removed)),
        "warc_file": corpus.warc_file.take(pa.array(removed)).cast(pa.string()),
        "reason": pa.array([REASONS[c] for c in corpus.reason[removed]], pa.string()),
        "cluster_id": cluster_id.cast(pa.int64()), "survivor_id": survivor_id,
    }, schema=REMOVED_SCHEMA)
    storage.write_parquet(table, storage.join(out, "dedup", "removed.parquet"), opts)


def _cluster_members(corpus: _Corpus, survivor: np.ndarray) -> dict[int, np.ndarray]:
    removed = np.flatnonzero((~corpus.alive) & (survivor >= 0))
    order = removed[np.argsort(survivor[removed], kind="stable")]
    heads, starts = np.unique(survivor[order], return_index=True)
    return dict(zip(heads.tolist(), np.split(order, starts[1:])))


def _write_cluster_sample(out: str, corpus: _Corpus, clusters: dict[int, np.ndarray], limit: int,
                          seed: int, opts: dict[str, Any]) -> None:
    """dedup/clusters.jsonl: half the largest clusters, half a seeded random sample of the others,
    each with its survivor and (up to 20) removed members, URLs included."""
    by_size = sorted(clusters, key=lambda s: (-len(clusters[s]), s))
    largest = by_size[: limit // 2]
    rest = by_size[limit // 2:]
    chosen = largest + sorted(random.Random(seed).sample(rest, min(len(rest), limit - len(largest))))

    def doc(i: int) -> dict[str, Any]:
        return {"doc_id": corpus.doc_id[i].as_py(), "url": corpus.url[i].as_py(),
                "warc_file": corpus.warc_file[i].as_py()}

    lines = []
    for head in chosen:
        members = clusters[head]
        shown = [{**doc(int(i)), "reason": REASONS[corpus.reason[i]]} for i in members[:_CLUSTER_MEMBERS_SHOWN]]
        lines.append(json.dumps({"cluster_id": int(head), "size": 1 + len(members), "survivor": doc(head),
                                 "removed": shown, "removed_not_shown": max(0, len(members) - len(shown))}))
    storage.atomic_write_bytes(storage.join(out, "dedup", "clusters.jsonl"),
                               "".join(line + "\n" for line in lines).encode(), opts)


def run_dedup(cfg: SieveConfig, out: str, doc_files: list[str], fingerprint: str | None = None) -> dict[str, Any]:
    """The dedup stage (see module docstring); returns its stats, also in dedup/stats.json.

    Reused when dedup/stats.json, written last, carries `fingerprint` (the dedup parameters and
    the decided documents, see `pipeline.stages.fingerprint`); otherwise that marker goes first, so a
    stage killed midway never leaves a marker that matches its half-written outputs."""
    opts = cfg.input.storage_options
    from pipeline.stages.fingerprint import dedup_fingerprint, files_fingerprint, matching_marker

    fingerprint = fingerprint or dedup_fingerprint(cfg, files_fingerprint(doc_files, opts))
    marker = storage.join(out, "dedup", "stats.json")
    if (stored := matching_marker(marker, fingerprint, opts)) is not None:
        return stored
    storage.remove_file(marker, opts)
    started = time.time()
    stage = _Stage(init_ray(cfg), cfg, out, doc_files)
    plan = stage.plan
    corpus, band_refs, line_refs = stage.scan()
    stage.exact(corpus)
    near_stats = stage.near(corpus, band_refs) if cfg.dedup.near.enabled else {}
    boilerplate = stage.boilerplate(corpus, line_refs)
    written = stage.write(corpus, boilerplate)

    survivor = _final_survivors(corpus)
    _write_removed(out, corpus, survivor, opts)
    clusters = _cluster_members(corpus, survivor)
    _write_cluster_sample(out, corpus, clusters, cfg.dedup.near.sample_clusters, cfg.run.seed, opts)
    removed = np.flatnonzero(~corpus.alive)
    reasons = [REASONS[c] for c in corpus.reason[removed]]
    removed_by_file: dict[str, Counter[str]] = {}
    for warc, reason in zip(corpus.warc_file.take(pa.array(removed)).cast(pa.string()).to_pylist(), reasons):
        removed_by_file.setdefault(warc, Counter())[reason] += 1
    cluster_sizes = Counter(1 + len(m) for m in clusters.values())
    stats = {
        "config_hash": cfg.hash(), "fingerprint": fingerprint,
        "files": len(doc_files), "docs_in": corpus.n_new, **written,
        **({"against_docs": corpus.n - corpus.n_new} if cfg.dedup.against else {}),
        "removed_by_reason": dict(Counter(reasons)),
        "removed_by_file": {w: dict(c) for w, c in sorted(removed_by_file.items())},
        "lsh": {"num_perm": plan.minhash.num_perm, "ngram": plan.minhash.ngram, "bands": plan.bands,
                "rows": plan.rows, "threshold": plan.threshold,
                "p_candidate_at_threshold": round(candidate_probability(plan.threshold, plan.bands, plan.rows), 4),
                "partitions": plan.partitions, "bucket_hubs": plan.bucket_hubs, "verify": cfg.dedup.near.verify,
                "verify_with": plan.verify_with},
        "near": near_stats,
        "clusters": len(clusters),
        "cluster_size_histogram": {str(k): v for k, v in sorted(cluster_sizes.items())},
        "boilerplate_lines": int(len(boilerplate)),
        "phase_seconds": stage.seconds,
        "seconds": round(time.time() - started, 3),
    }
    if stats["docs_out"] + sum(stats["removed_by_reason"].values()) != corpus.n_new:
        raise AssertionError(f"dedup accounting: {stats['docs_out']} kept + {stats['removed_by_reason']} "
                             f"removed != {corpus.n_new} documents in {len(doc_files)} files")
    storage.atomic_write_json(marker, stats, opts)
    return stats
