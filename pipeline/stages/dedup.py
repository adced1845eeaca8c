"""The dedup stage on Ray: exact, near-duplicate (MinHash LSH) and boilerplate-line removal,
with nothing on the driver that grows with the corpus.

Documents files are cut into G contiguous *groups* (G = min(partitions, files)); keys are hashed
into P *partitions*. Every step is one wave of Ray tasks, one per group or per partition, that
reads the files the previous wave spilled under `<out>/dedup/work/` (local or s3) and spills its
own. The driver only starts waves and adds up their small stats.

    step          task per    reads                         spills
    scan          group       documents                     meta/<file>, url or text keys
    url, exact    partition   (hash, rank key, gid)         removals, survivors -> text keys
    bands         group       signatures of live docs       band keys
    candidates    partition   band keys                     pairs, by group of a
    verify a, b   group       pairs + features of a, of b   edges (both directions)
    components    partition   edges (large-star/small-star rounds until stable) -> labels
    members       group       labels + rank keys/features   members, by label
    clusters      partition   members of components         removals (chain guard inside)
    lines         group       text of live docs             line keys
    boilerplate   partition   line keys                     boilerplate keys
    write         group       documents, removals           curated/<file>, emptied docs
    survivors     group       removals (pointer jumping)    final survivor per removed doc
    report        group       final removals + meta         removed.parquet rows, cluster sample

The survivor order is a binary *rank key* per document (earlier runs first, then
dedup.near.survivor, doc_id, file order), so every decision is local to a key or a component and
the survivors do not depend on the number of partitions or workers. Resumable: a finished stage
leaves dedup/stats.json with its fingerprint, and a rerun returns it.
"""
from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filters.dedup import (
    MinHasher,
    MinHashFilter,
    MinHashParams,
    band_keys,
    bucket_pairs,
    candidate_probability,
    distinct_line_keys,
    exact_jaccard,
    lsh_params,
    remove_lines,
    shingle_hashes,
    split_component,
    text_hash,
    url_keys,
)
from filters.hashing import mix64
from filters.quality import QualityFilter
from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.runtime import init_ray

REASON_EXACT, REASON_URL, REASON_NEAR, REASON_EMPTY = (
    "dedup:exact", "dedup:url", "dedup:near", "dedup:empty_after_line_dedup")
REASONS = ["", REASON_URL, REASON_EXACT, REASON_NEAR, REASON_EMPTY]  # code -> reason ("" = kept)
REMOVED_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("warc_file", pa.string()),
                            ("reason", pa.string()), ("cluster_id", pa.int64()), ("survivor_id", pa.string())])
_CLUSTER_MEMBERS_SHOWN = 20
_MAX_CC_ROUNDS = 200
_SIGNATURES = MinHashFilter.signature_column
_TEXT_HASH = MinHashFilter.text_hash_column
_QUALITY = QualityFilter.score_column

_KEYED = pa.schema([("key", pa.uint64()), ("text_hash", pa.uint64()), ("rank_key", pa.binary()), ("gid", pa.int64())])
_REMOVAL = pa.schema([("gid", pa.int64()), ("survivor", pa.int64()), ("reason", pa.int8())])
_PAIRS = pa.schema([("a", pa.int64()), ("b", pa.int64())])
_PAIRS_A = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("feature", pa.list_(pa.uint32()))])
_BANDS = pa.schema([("key", pa.uint64()), ("gid", pa.int64())])
_MEMBERS = pa.schema([("label", pa.int64()), ("gid", pa.int64()), ("rank_key", pa.binary()),
                      ("feature", pa.list_(pa.uint32()))])
_FINAL = pa.schema([("gid", pa.int64()), ("survivor", pa.int64()), ("reason", pa.int8()), ("doc_id", pa.string()),
                    ("url", pa.string()), ("warc_file", pa.string())])
_META = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("warc_file", pa.string()),
                   ("rank_key", pa.binary())])


@dataclass(frozen=True)
class DedupPlan:
    """Everything a dedup task needs: parameters, the files and their sizes (no documents).
    Shipped once to the object store and shared by every task."""

    minhash: MinHashParams
    bands: int
    rows: int
    partitions: int
    bucket_hubs: int
    threshold: float
    verify: bool
    verify_with: str
    by_url: bool
    exact: bool
    near: bool
    line_enabled: bool
    min_line_chars: int
    max_repeats: int
    survivor: tuple[str, ...]
    work: str
    files: tuple[str, ...]  # this run's documents files, then the `dedup.against` runs' files
    new_files: int
    earlier_removed: tuple[str, ...]  # removed.parquet of the run each earlier file belongs to
    file_rows: tuple[int, ...] = ()  # filled in after the scan
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: SieveConfig, out: str, doc_files: list[str]) -> "DedupPlan":
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
        earlier = _earlier_files(cfg)
        return cls(minhash=params, bands=bands, rows=rows, partitions=near.partitions, bucket_hubs=near.bucket_hubs,
                   threshold=near.threshold, verify=near.verify, verify_with=near.verify_with,
                   by_url=cfg.dedup.by_url, exact=cfg.dedup.exact, near=near.enabled,
                   line_enabled=cfg.dedup.line.enabled, min_line_chars=cfg.dedup.line.min_line_chars,
                   max_repeats=cfg.dedup.line.max_repeats, survivor=tuple(near.survivor),
                   work=storage.join(out, "dedup", "work"), files=tuple(doc_files) + tuple(p for p, _ in earlier),
                   new_files=len(doc_files), earlier_removed=tuple(r for _, r in earlier),
                   storage_options=dict(cfg.input.storage_options))

    def hasher(self) -> MinHasher:
        p = self.minhash
        return MinHasher(p.num_perm, p.seed, p.ngram, p.scheme)

    @property
    def groups(self) -> int:
        return max(1, min(self.partitions, len(self.files)))

    def files_of_group(self, group: int) -> list[int]:
        n = len(self.files)
        return [f for f in range(n) if f * self.groups // n == group]

    def group_of(self, gids: np.ndarray) -> np.ndarray:
        return (gids >> 32) * self.groups // max(1, len(self.files))

    def part_of(self, gids: np.ndarray) -> np.ndarray:
        """Partition of document ids (mixed: their low bits are row numbers)."""
        return (mix64(gids.astype(np.uint64)) % np.uint64(self.partitions)).astype(np.int64)

    def index_of(self, gids: np.ndarray) -> np.ndarray:
        """Global index (file by file, row by row) of document ids."""
        start = np.concatenate(([0], np.cumsum(self.file_rows, dtype=np.int64)))
        return start[gids >> 32] + (gids & np.int64(0xFFFFFFFF))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- spill files

class _Spill:
    """The records one task sends to the next wave: one Arrow IPC file per destination partition
    and flush, under <work>/<name>/<partition>/<source>-<chunk>.arrow."""

    def __init__(self, plan: DedupPlan, name: str, source: str, schema: pa.Schema, flush_rows: int = 1 << 21) -> None:
        self.plan, self.name, self.source, self.schema, self.flush_rows = plan, name, source, schema, flush_rows
        self.buffers: dict[int, list[pa.Table]] = {}
        self.rows = self.chunk = self.bytes = 0

    def add(self, table: pa.Table, parts: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        table = table.cast(self.schema)
        order = np.argsort(parts, kind="stable")
        sorted_parts = parts[order]
        bounds = np.flatnonzero(np.concatenate(([True], sorted_parts[1:] != sorted_parts[:-1], [True])))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            self.buffers.setdefault(int(sorted_parts[lo]), []).append(table.take(pa.array(order[lo:hi])))
        self.rows += table.num_rows
        if self.rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        for part, tables in sorted(self.buffers.items()):
            path = storage.join(self.plan.work, self.name, f"{part:05d}", f"{self.source}-{self.chunk:04d}.arrow")
            self.bytes += _write_arrow(pa.concat_tables(tables), path, self.plan.storage_options)
        self.buffers, self.rows, self.chunk = {}, 0, self.chunk + 1

    def close(self) -> int:
        self.flush()
        return self.bytes


def _write_arrow(table: pa.Table, path: str, opts: dict[str, Any]) -> int:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    storage.makedirs(path.rsplit("/", 1)[0], opts)
    fs, p = storage.fs_and_path(path, opts)
    with fs.open(p, "wb") as fh:
        fh.write(data)
    return data.size


def _read_spilled(plan: DedupPlan, name: str, part: int, schema: pa.Schema) -> pa.Table:
    """Everything spilled to one partition of `name` (empty table when nothing was)."""
    tables = []
    for path in storage.listdir(storage.join(plan.work, name, f"{part:05d}"), ".arrow", plan.storage_options):
        fs, p = storage.fs_and_path(path, plan.storage_options)
        with fs.open(p, "rb") as fh:
            tables.append(pa.ipc.open_stream(fh).read_all())
    return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()


def _result(spills: list[_Spill], **stats: Any) -> dict[str, Any]:
    return {"bytes": sum(s.close() for s in spills), "rss_mb": _peak_rss_mb(), **stats}


# ---------------------------------------------------------------- reading documents files

def _schema(path: str, opts: dict[str, Any]) -> pa.Schema:
    fs, p = storage.fs_and_path(path, opts)
    with fs.open(p, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow


def _earlier_removed_ids(plan: DedupPlan, f: int, warc_files: pa.Array | None) -> pa.Array:
    """doc_ids that the run of earlier file f removed: only the rows of that run's removed.parquet
    from the file's WARC files (a pushed-down filter, not the whole file) when it names them."""
    fs, p = storage.fs_and_path(plan.earlier_removed[f - plan.new_files], plan.storage_options)
    filters = None if warc_files is None else [("warc_file", "in", pc.unique(warc_files.cast(pa.string())).to_pylist())]
    if filters is not None and not filters[0][2]:
        return pa.array([], pa.string())
    return pq.read_table(p, columns=["doc_id"], filesystem=fs, filters=filters).column("doc_id").combine_chunks()


def _earlier_table(plan: DedupPlan, f: int, columns: list[str]) -> pa.Table:
    """The documents of an earlier run's file that its dedup kept, only `columns`: the same rows
    in the same order for every caller (their row numbers are this run's gids)."""
    path = plan.files[f]
    names = _schema(path, plan.storage_options).names
    missing = {"doc_id", _SIGNATURES, _TEXT_HASH} - set(names)
    if missing:
        raise ValueError(f"{path}: dedup.against needs the minhash filter's columns, {sorted(missing)} missing")
    columns = [c for c in columns if c in names]
    read = list(dict.fromkeys(["doc_id", "warc_file", *columns] if "warc_file" in names else ["doc_id", *columns]))
    table = storage.read_parquet(path, columns=read, storage_options=plan.storage_options)
    warc = table.column("warc_file").combine_chunks() if "warc_file" in names else None
    removed = _earlier_removed_ids(plan, f, warc)
    keep = pc.invert(pc.is_in(table.column("doc_id").cast(pa.string()), value_set=removed))
    return table.filter(keep).select(columns)


def _file_table(plan: DedupPlan, f: int, columns: list[str]) -> pa.Table:
    """Some columns of file f (those it has), rows as numbered by the scan."""
    if f >= plan.new_files:
        return _earlier_table(plan, f, columns)
    names = _schema(plan.files[f], plan.storage_options).names
    return storage.read_parquet(plan.files[f], columns=[c for c in columns if c in names],
                                storage_options=plan.storage_options)


def _signatures(table: pa.Table, path: str, plan: DedupPlan) -> np.ndarray:
    """(n, num_perm) uint32 signatures from the minhash column, or computed from the text when
    the documents were annotated without the minhash filter."""
    num_perm, n = plan.minhash.num_perm, table.num_rows
    if _SIGNATURES not in table.column_names:
        hasher = plan.hasher()
        return np.stack([hasher.signature(t) for t in table.column("text").to_pylist()]) if n else \
            np.zeros((0, num_perm), dtype=np.uint32)
    column = table.column(_SIGNATURES).combine_chunks()
    if column.null_count:
        raise ValueError(f"{path}: {column.null_count} documents have no minhash signature")
    flat = np.asarray(column.flatten(), dtype=np.uint32)
    if len(flat) != n * num_perm:
        raise ValueError(f"{path}: minhash signatures hold {len(flat) / max(n, 1):g} values per document, "
                         f"config filters.minhash.num_perm is {num_perm}")
    return flat.reshape(n, num_perm)


def _features(plan: DedupPlan, f: int, rows: np.ndarray) -> pa.Array:
    """What verification compares for some rows of file f, as list<uint32>: signatures, or
    shingle sets read from the text (`verify_with: text`)."""
    path = plan.files[f]
    read_text = plan.verify_with == "text" or (f < plan.new_files and
                                               _SIGNATURES not in _schema(path, plan.storage_options).names)
    table = _file_table(plan, f, ["text"] if read_text else [_SIGNATURES]).take(pa.array(rows))
    if plan.verify_with == "text":
        sets = [shingle_hashes(t, plan.minhash.ngram) for t in table.column("text").to_pylist()]
        offsets = np.concatenate(([0], np.cumsum([len(s) for s in sets]))).astype(np.int32)
        values = np.concatenate(sets) if sets else np.zeros(0, np.uint32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.uint32()))
    sigs = _signatures(table, path, plan)
    offsets = np.arange(0, sigs.size + 1, max(1, sigs.shape[1]), dtype=np.int32)[: len(sigs) + 1]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(sigs.reshape(-1), pa.uint32()))


def _read_meta(plan: DedupPlan, f: int) -> pa.Table:
    fs, p = storage.fs_and_path(storage.join(plan.work, "meta", f"{f:06d}.arrow"), plan.storage_options)
    with fs.open(p, "rb") as fh:
        return pa.ipc.open_stream(fh).read_all()


def _rows_by_file(gids: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(file, positions in gids, rows) for each file the ids fall in."""
    files = gids >> 32
    order = np.argsort(files, kind="stable")
    out = []
    for f in np.unique(files):
        pos = order[files[order] == f]
        out.append((int(f), pos, (gids[pos] & np.int64(0xFFFFFFFF)).astype(np.int64)))
    return out


def _removed_gids(plan: DedupPlan, group: int) -> np.ndarray:
    """Documents of a group removed by the steps so far (sorted)."""
    return np.unique(_read_spilled(plan, "removed", group, _REMOVAL).column("gid").to_numpy())


# ---------------------------------------------------------------- rank keys

def _order_key_desc(values: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is the descending order of float64 `values`."""
    bits = (values.astype(np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 ties with 0.0
    sign = bits >> np.uint64(63)
    ascending = np.where(sign == 1, ~bits, bits | np.uint64(1 << 63))
    return ~ascending


def _binary(fixed: np.ndarray) -> pa.Array:
    """Big-endian uint64 values as 8-byte binary strings (which sort like the numbers)."""
    data = fixed.astype(">u8").tobytes()
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), len(fixed), [None, pa.py_buffer(data)]).cast(pa.binary())


def rank_keys(doc_id: pa.Array, quality: np.ndarray, length: np.ndarray, gids: np.ndarray, earlier: bool,
              policy: tuple[str, ...]) -> pa.Array:
    """Binary survivor-preference key per document (smallest is kept): earlier runs' documents
    first, then the dedup.near.survivor keys, doc_id, and file order."""
    n = len(gids)
    segments = [_binary(np.full(n, 0 if earlier else 1, np.uint64))]
    for key in dict.fromkeys(list(policy) + ["doc_id"]):
        if key == "quality":
            segments.append(_binary(_order_key_desc(quality)))
        elif key == "length":
            segments.append(_binary(~length.astype(np.uint64)))
        else:  # doc_id ascending; the NUL terminator keeps "a" before "ab" when more keys follow
            terminated = pc.binary_join_element_wise(doc_id.cast(pa.binary()), pa.scalar(b"\x00", pa.binary()),
                                                     pa.scalar(b"", pa.binary()))
            segments.append(terminated)
    segments.append(_binary(gids.astype(np.uint64)))
    return pc.binary_join_element_wise(*segments, pa.scalar(b"", pa.binary()))


# ---------------------------------------------------------------- tasks: scan and exact

def scan_group(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group: each file's meta (doc_id, url, warc_file, rank key) to meta/<file>, and its
    (url hash | text hash, rank key, gid) to the URL step or straight to the exact step."""
    url_spill = _Spill(plan, "url", f"g{group:05d}", _KEYED)
    text_spill = _Spill(plan, "text", f"g{group:05d}", _KEYED)
    rows, meta_bytes = {}, 0
    for f in plan.files_of_group(group):
        path, earlier = plan.files[f], f >= plan.new_files
        names = _schema(path, plan.storage_options).names
        if not earlier and {"doc_id", "text"} - set(names):
            raise ValueError(f"{path}: not a documents file, columns {sorted({'doc_id', 'text'} - set(names))} missing")
        wanted = ["doc_id", "url", "warc_file", _TEXT_HASH, _QUALITY] + ([] if earlier else ["text"])
        table = _file_table(plan, f, wanted)
        n = rows[f] = table.num_rows
        gids = (np.int64(f) << np.int64(32)) | np.arange(n, dtype=np.int64)
        empty = pa.array([""] * n, pa.string())
        urls = pc.fill_null(table.column("url").combine_chunks().cast(pa.string()), "") if "url" in names else empty
        texts = None if earlier else table.column("text")
        hashes = (table.column(_TEXT_HASH).to_numpy().astype(np.uint64) if _TEXT_HASH in table.column_names
                  else np.fromiter((text_hash(t) for t in texts.to_pylist()), np.uint64, count=n))
        quality = (np.nan_to_num(table.column(_QUALITY).to_numpy(zero_copy_only=False).astype(np.float64), nan=-np.inf)
                   if _QUALITY in table.column_names and not earlier else np.zeros(n))
        length = (pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64) if n and not earlier
                  else np.zeros(n, np.int64))
        doc_id = table.column("doc_id").combine_chunks().cast(pa.string())
        keys = rank_keys(doc_id, quality, length, gids, earlier, plan.survivor)
        meta = pa.table({"doc_id": doc_id, "url": urls,
                         "warc_file": (table.column("warc_file").combine_chunks().cast(pa.string())
                                       if "warc_file" in names else empty), "rank_key": keys}, schema=_META)
        meta_bytes += _write_arrow(meta, storage.join(plan.work, "meta", f"{f:06d}.arrow"), plan.storage_options)
        has_url = pc.greater(pc.utf8_length(urls), 0).to_numpy(zero_copy_only=False) if plan.by_url \
            else np.zeros(n, bool)
        url_hash = url_keys(urls.to_pylist()) if plan.by_url else np.zeros(n, np.uint64)
        keyed = pa.table({"key": url_hash, "text_hash": hashes, "rank_key": keys, "gid": gids}, schema=_KEYED)
        if plan.by_url:
            chosen = keyed.filter(pa.array(has_url))
            url_spill.add(chosen, _key_part(chosen.column("key"), plan))
        if plan.exact:
            rest = keyed.filter(pa.array(~has_url)).set_column(0, "key", pa.array(hashes[~has_url], pa.uint64()))
            text_spill.add(rest, _key_part(rest.column("key"), plan))
    result = _result([url_spill, text_spill], rows=rows)
    result["bytes"] += meta_bytes
    return result


def _key_part(keys: pa.ChunkedArray | pa.Array | np.ndarray, plan: DedupPlan) -> np.ndarray:
    """Partition of hash keys (already uniform): key mod P."""
    values = keys.to_numpy() if not isinstance(keys, np.ndarray) else keys
    return (values.astype(np.uint64) % np.uint64(plan.partitions)).astype(np.int64)


def _best_first(keys: np.ndarray, rank_key: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(order, head): rows sorted by (key, rank key) and, for each, the best-ranked row of its key."""
    order = pc.sort_indices(pa.table({"k": keys, "r": rank_key}),
                            sort_keys=[("k", "ascending"), ("r", "ascending")]).to_numpy()
    if len(order) == 0:
        return order, order
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    return order, np.repeat(order[starts], np.diff(np.append(starts, len(order))))


def exact_partition(plan: DedupPlan, step: str, part: int) -> dict[str, Any]:
    """Per partition of the URL or the text step: in each group of equal keys the best-ranked
    document stays; the others are removed (earlier runs' documents never are). The URL step
    sends what stays on to the text step."""
    table = _read_spilled(plan, step, part, _KEYED)
    keys, gids = table.column("key").to_numpy(), table.column("gid").to_numpy()
    order, head = _best_first(keys, table.column("rank_key"))
    removed = (head != order) & ((gids[order] >> 32) < plan.new_files)
    reason = REASONS.index(REASON_URL if step == "url" else REASON_EXACT)
    removals = _Spill(plan, "removed", f"{step}{part:05d}", _REMOVAL)
    dup = gids[order[removed]]
    removals.add(pa.table({"gid": dup, "survivor": gids[head[removed]], "reason": np.full(len(dup), reason, np.int8)}),
                 plan.group_of(dup))
    spills = [removals]
    if step == "url" and plan.exact:
        onward = _Spill(plan, "text", f"url{part:05d}", _KEYED)
        stay = table.take(pa.array(np.sort(order[~removed])))
        stay = stay.set_column(0, "key", stay.column("text_hash"))
        onward.add(stay, _key_part(stay.column("key"), plan))
        spills.append(onward)
    return _result(spills, removed=int(removed.sum()))


# ---------------------------------------------------------------- tasks: near duplicates

def bands_group(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group: LSH band keys of the documents still alive after exact dedup."""
    dead = _removed_gids(plan, group)
    spill = _Spill(plan, "bands", f"g{group:05d}", _BANDS)
    for f in plan.files_of_group(group):
        path = plan.files[f]
        names = set(_schema(path, plan.storage_options).names)
        table = _file_table(plan, f, [_SIGNATURES] if _SIGNATURES in names else ["text"])
        gids = (np.int64(f) << np.int64(32)) | np.arange(table.num_rows, dtype=np.int64)
        alive = ~np.isin(gids, dead)
        keys = band_keys(_signatures(table.filter(pa.array(alive)), path, plan), plan.bands, plan.rows).reshape(-1)
        spill.add(pa.table({"key": keys, "gid": np.repeat(gids[alive], plan.bands)}), _key_part(keys, plan))
    return _result([spill])


def candidates_partition(plan: DedupPlan, part: int) -> dict[str, Any]:
    """Per partition of band keys: candidate pairs (a < b) from colliding buckets, sent to the
    group of a."""
    table = _read_spilled(plan, "bands", part, _BANDS)
    pairs = bucket_pairs(table.column("key").to_numpy(), table.column("gid").to_numpy(), plan.bucket_hubs)
    spill = _Spill(plan, "pairs", f"p{part:05d}", _PAIRS)
    spill.add(pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}), plan.group_of(pairs[:, 0]))
    return _result([spill])


def _spill_edges(spill: _Spill, a: np.ndarray, b: np.ndarray, plan: DedupPlan) -> None:
    """Undirected edges, both directions, each under its first node's partition."""
    u, v = np.concatenate([a, b]), np.concatenate([b, a])
    spill.add(pa.table({"a": u, "b": v}), plan.part_of(u))


def verify_first(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group of a: distinct candidate pairs; with verification, a's features go along to the
    group of b, else the pairs are the edges."""
    table = _read_spilled(plan, "pairs", group, _PAIRS)
    pairs = np.unique(np.stack([table.column("a").to_numpy(), table.column("b").to_numpy()], axis=1), axis=0) \
        if table.num_rows else np.zeros((0, 2), np.int64)
    if not plan.verify:
        edges = _Spill(plan, "cc00000", f"g{group:05d}", _PAIRS)
        _spill_edges(edges, pairs[:, 0], pairs[:, 1], plan)
        return _result([edges], candidates=len(pairs), edges=len(pairs))
    spill = _Spill(plan, "pairs_a", f"g{group:05d}", _PAIRS_A)
    for f, pos, rows in _rows_by_file(pairs[:, 0]):
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        features = _features(plan, f, unique_rows).take(pa.array(inverse))
        chosen = pairs[pos]
        spill.add(pa.table({"a": chosen[:, 0], "b": chosen[:, 1], "feature": features}), plan.group_of(chosen[:, 1]))
    return _result([spill], candidates=len(pairs))


def _similar_rows(first: pa.Array, second: pa.Array, plan: DedupPlan) -> np.ndarray:
    """Row-wise: is Jaccard(first[i], second[i]) at or above the threshold (signature agreement,
    or exact Jaccard of shingle sets)."""
    if len(first) == 0:
        return np.zeros(0, bool)
    if plan.verify_with == "signature" and _fixed_width(first) and _fixed_width(second):
        a = np.asarray(first.flatten()).reshape(len(first), -1)
        b = np.asarray(second.flatten()).reshape(len(second), -1)
        return (a == b).sum(axis=1) >= plan.threshold * a.shape[1]
    a, b = first.to_numpy(zero_copy_only=False), second.to_numpy(zero_copy_only=False)
    return np.array([exact_jaccard(x, y) >= plan.threshold for x, y in zip(a, b)], dtype=bool)


def _fixed_width(features: pa.Array) -> bool:
    lengths = pc.list_value_length(features).to_numpy(zero_copy_only=False)
    return len(lengths) == 0 or bool((lengths == lengths[0]).all())


def verify_second(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group of b: compare with b's features; pairs at or above the threshold become edges."""
    table = _read_spilled(plan, "pairs_a", group, _PAIRS_A)
    b = table.column("b").to_numpy()
    edges = _Spill(plan, "cc00000", f"g{group:05d}", _PAIRS)
    verified = 0
    for f, pos, rows in _rows_by_file(b):
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        second = _features(plan, f, unique_rows).take(pa.array(inverse))
        chosen = table.take(pa.array(pos))
        ok = _similar_rows(chosen.column("feature").combine_chunks(), second, plan)
        verified += int(ok.sum())
        _spill_edges(edges, chosen.column("a").to_numpy()[ok], chosen.column("b").to_numpy()[ok], plan)
    return _result([edges], edges=verified)


def _edges(plan: DedupPlan, name: str, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (u, v) of one partition, sorted by u then v."""
    table = _read_spilled(plan, name, part, _PAIRS)
    if table.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([table.column("a").to_numpy(), table.column("b").to_numpy()], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _group_min(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (u, v) sorted by u: the start of each u's run and min(u, its smallest v) per run."""
    starts = np.flatnonzero(np.concatenate(([True], u[1:] != u[:-1])))
    return starts, np.minimum(u[starts], np.minimum.reduceat(v, starts))


def large_star(plan: DedupPlan, name: str, out: str, part: int) -> dict[str, Any]:
    """Kiveris et al. large-star over one partition: each node's larger neighbours are linked to
    the smallest node of its neighbourhood. Output grouped by its larger end for small-star."""
    u, v = _edges(plan, name, part)
    spill = _Spill(plan, out, f"p{part:05d}", _PAIRS)
    if not len(u):
        return _result([spill], changes=0)
    starts, smallest = _group_min(u, v)
    m = np.repeat(smallest, np.diff(np.append(starts, len(u))))
    larger = v > u
    spill.add(pa.table({"a": v[larger], "b": m[larger]}), plan.part_of(v[larger]))
    return _result([spill], changes=int(np.count_nonzero(larger & (m != u))))


def small_star(plan: DedupPlan, name: str, out: str, part: int) -> dict[str, Any]:
    """Small-star over one partition of (node, smaller neighbour): the node and its smaller
    neighbours are linked to the smallest of them. Output in both directions for large-star."""
    u, v = _edges(plan, name, part)
    spill = _Spill(plan, out, f"p{part:05d}", _PAIRS)
    if not len(u):
        return _result([spill], changes=0)
    starts, smallest = _group_min(u, v)
    sizes = np.diff(np.append(starts, len(u)))
    m = np.repeat(smallest, sizes)
    linked = v != m
    a = np.concatenate([v[linked], u[starts]])
    b = np.concatenate([m[linked], smallest])
    _spill_edges(spill, a, b, plan)
    return _result([spill], changes=int(np.count_nonzero(sizes > 1)))


def label_partition(plan: DedupPlan, name: str, part: int) -> dict[str, Any]:
    """After the last round every component is a star around its smallest id: each node's label is
    min(itself, its neighbours). Sent to the node's group with that label."""
    u, v = _edges(plan, name, part)
    spill = _Spill(plan, "nodes", f"p{part:05d}", _PAIRS)
    if len(u):
        starts, label = _group_min(u, v)
        spill.add(pa.table({"a": u[starts], "b": label}), plan.group_of(u[starts]))
    return _result([spill])


def members_group(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group: the rank key (and, for the chain guard, the features) of each component member,
    sent to its component's partition."""
    table = _read_spilled(plan, "nodes", group, _PAIRS)
    gids, labels = table.column("a").to_numpy(), table.column("b").to_numpy()
    spill = _Spill(plan, "members", f"g{group:05d}", _MEMBERS)
    for f, pos, rows in _rows_by_file(gids):
        keys = _read_meta(plan, f).column("rank_key").take(pa.array(rows))
        if plan.verify:
            unique_rows, inverse = np.unique(rows, return_inverse=True)
            features = _features(plan, f, unique_rows).take(pa.array(inverse))
        else:
            features = pa.array([[]] * len(rows), pa.list_(pa.uint32()))
        spill.add(pa.table({"label": labels[pos], "gid": gids[pos], "rank_key": keys, "feature": features}),
                  plan.part_of(labels[pos]))
    return _result([spill])


def clusters_partition(plan: DedupPlan, part: int) -> dict[str, Any]:
    """Per partition of components: members in survivor order. Pairs (and every component when
    verification is off) keep their best member; larger components are split by the chain guard
    (a member goes only if similar to its own survivor)."""
    table = _read_spilled(plan, "members", part, _MEMBERS)
    labels = table.column("label").to_numpy()
    order, _ = _best_first(labels, table.column("rank_key"))
    table = table.take(pa.array(order))
    labels, gids = labels[order], table.column("gid").to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1]))) if len(labels) else np.zeros(0, int)
    sizes = np.diff(np.append(starts, len(labels)))
    survivor = np.repeat(gids[starts], sizes)  # the best member of each component
    chains = [(s, n) for s, n in zip(starts, sizes) if n > 2] if plan.verify else []
    split = 0
    if chains:
        features = table.column("feature").combine_chunks()
        similar = _similar_positions(features, plan)
        for start, size in chains:
            positions = np.arange(start, start + size)
            centers = split_component(positions, similar)
            survivor[positions] = gids[centers]
    new = (gids >> 32) < plan.new_files
    removed = (survivor != gids) & new
    if chains:
        kept_self = ~removed
        split = sum(int(np.count_nonzero(kept_self[s: s + n])) > 1 for s, n in chains)
    in_chains = np.zeros(len(gids), bool)
    for start, size in chains:
        in_chains[start: start + size] = True
    spill = _Spill(plan, "removed", f"near{part:05d}", _REMOVAL)
    spill.add(pa.table({"gid": gids[removed], "survivor": survivor[removed],
                        "reason": np.full(int(removed.sum()), REASONS.index(REASON_NEAR), np.int8)}),
              plan.group_of(gids[removed]))
    return _result([spill], components=len(starts), largest=int(sizes.max(initial=0)), chains_split=split,
                   removed_in_chains=int(np.count_nonzero(removed & in_chains)))


def _similar_positions(features: pa.Array, plan: DedupPlan) -> Callable[[int, np.ndarray], np.ndarray]:
    """`similar(center, others)` over rows of a features array, for `split_component`."""
    if plan.verify_with == "signature" and _fixed_width(features):
        sigs = np.asarray(features.flatten()).reshape(len(features), -1)
        need = plan.threshold * sigs.shape[1]
        return lambda center, others: (sigs[others] == sigs[center]).sum(axis=1) >= need
    sets = features.to_numpy(zero_copy_only=False)
    return lambda center, others: np.array([exact_jaccard(sets[center], sets[o]) >= plan.threshold for o in others],
                                           dtype=bool)


# ---------------------------------------------------------------- tasks: lines and writing

def lines_group(plan: DedupPlan, group: int) -> dict[str, Any]:
    """Per group: the distinct line keys of every document still alive."""
    dead = _removed_gids(plan, group)
    spill = _Spill(plan, "lines", f"g{group:05d}", _BANDS)
    for f in plan.files_of_group(group):
        if f >= plan.new_files:
            continue
        texts = storage.read_parquet(plan.files[f], columns=["text"], storage_options=plan.storage_options)
        gids = (np.int64(f) << np.int64(32)) | np.arange(texts.num_rows, dtype=np.int64)
        alive = ~np.isin(gids, dead)
        per_doc = [distinct_line_keys(t, plan.min_line_chars) for t in texts.column("text").filter(pa.array(alive)).to_pylist()]
        keys = np.fromiter((k for ks in per_doc for k in ks), dtype=np.uint64)
        spill.add(pa.table({"key": keys, "gid": np.repeat(gids[alive], [len(k) for k in per_doc])}),
                  _key_part(keys, plan))
    return _result([spill])


def boilerplate_partition(plan: DedupPlan, part: int) -> dict[str, Any]:
    """Per partition of line keys: the lines found in more than max_repeats surviving documents."""
    keys = _read_spilled(plan, "lines", part, _BANDS).column("key").to_numpy()
    values, counts = np.unique(keys, return_counts=True)
    common = values[counts > plan.max_repeats]
    spill = _Spill(plan, "boilerplate", f"p{part:05d}", pa.schema([("key", pa.uint64())]))
    spill.add(pa.table({"key": common}), np.zeros(len(common), np.int64))
    return _result([spill], lines=len(common))


def write_group(plan: DedupPlan, group: int, out: str) -> dict[str, Any]:
    """Per group: each documents file to curated/, without its removed documents and boilerplate
    lines; documents emptied by line removal are removed too."""
    boilerplate = frozenset(_read_spilled(plan, "boilerplate", 0, pa.schema([("key", pa.uint64())]))
                            .column("key").to_numpy().tolist())
    dead = _removed_gids(plan, group)
    spill = _Spill(plan, "removed", f"empty{group:05d}", _REMOVAL)
    totals = Counter()
    for f in plan.files_of_group(group):
        if f >= plan.new_files:
            continue
        path = plan.files[f]
        rows = dead[(dead >> 32) == f] & np.int64(0xFFFFFFFF)
        result = write_curated(path, storage.join(out, "curated", _file_name(path)), rows, boilerplate, plan)
        emptied = (np.int64(f) << np.int64(32)) | result.pop("emptied_rows")
        spill.add(pa.table({"gid": emptied, "survivor": emptied,
                            "reason": np.full(len(emptied), REASONS.index(REASON_EMPTY), np.int8)}),
                  np.full(len(emptied), group, np.int64))
        totals.update(result)
    return _result([spill], **totals)


def write_curated(path: str, out_path: str, removed_rows: np.ndarray, boilerplate: frozenset[int],
                  plan: DedupPlan) -> dict[str, Any]:
    """One documents file, streamed, without its removed documents and boilerplate lines, minus
    the minhash column, plus `lines_removed`; returns the rows emptied by line removal."""
    opts = plan.storage_options
    schema = _schema(path, opts)
    names = [c for c in schema.names if c != _SIGNATURES]
    out_schema = pa.schema([schema.field(c) for c in names] + [pa.field("lines_removed", pa.int32())])
    text_type = schema.field("text").type
    min_chars = plan.min_line_chars
    writer = storage.ParquetStreamWriter(out_path, out_schema, opts)
    emptied: list[int] = []
    kept = lines_removed = docs_with_lines_removed = offset = 0
    try:
        for batch in storage.iter_parquet_batches(path, columns=names, storage_options=opts):
            rows = np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows
            keep = ~np.isin(rows, removed_rows)
            table = pa.Table.from_batches([batch.filter(pa.array(keep))])
            results = [remove_lines(t, boilerplate, min_chars) for t in table.column("text").to_pylist()]
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
    return {"docs_out": kept, "lines_removed": lines_removed, "docs_with_lines_removed": docs_with_lines_removed,
            "emptied_rows": np.array(emptied, dtype=np.int64)}


# ---------------------------------------------------------------- tasks: survivors and report

def jump_ask(plan: DedupPlan, group: int, name: str) -> dict[str, Any]:
    """Pointer jumping, first half: each removed document asks its survivor's group where that
    survivor went (URL -> exact -> near -> emptied chains end at a document still kept, or at an
    emptied one, which points at itself)."""
    table = _read_spilled(plan, name, group, _REMOVAL)
    spill = _Spill(plan, f"ask-{name}", f"g{group:05d}", _REMOVAL)
    spill.add(table, plan.group_of(table.column("survivor").to_numpy()))
    return _result([spill])


def jump_answer(plan: DedupPlan, group: int, name: str, out: str) -> dict[str, Any]:
    """Pointer jumping, second half: survivor := survivor's survivor, when that one was removed too."""
    pointers = _read_spilled(plan, name, group, _REMOVAL)
    asked = _read_spilled(plan, f"ask-{name}", group, _REMOVAL)
    x, s = pointers.column("gid").to_numpy(), pointers.column("survivor").to_numpy()
    order = np.argsort(x)
    x, s = x[order], s[order]
    target = asked.column("survivor").to_numpy()
    pos = np.minimum(np.searchsorted(x, target), max(len(x) - 1, 0))
    found = (x[pos] == target) if len(x) else np.zeros(len(target), bool)
    jumped = np.where(found, s[pos] if len(x) else target, target)
    spill = _Spill(plan, out, f"g{group:05d}", _REMOVAL)
    spill.add(asked.set_column(1, "survivor", pa.array(jumped, pa.int64())), plan.group_of(asked.column("gid").to_numpy()))
    return _result([spill], changes=int(np.count_nonzero(jumped != target)))


def report_first(plan: DedupPlan, group: int, name: str) -> dict[str, Any]:
    """Per group of removed documents: their doc_id/url/warc_file and counts by file and reason,
    sent to their survivor's group (emptied documents, with no survivor, stay)."""
    table = _read_spilled(plan, name, group, _REMOVAL)
    gids, survivor = table.column("gid").to_numpy(), table.column("survivor").to_numpy()
    reason = table.column("reason").to_numpy()
    survivor = np.where(reason == REASONS.index(REASON_EMPTY), -1, survivor)
    spill = _Spill(plan, "final", f"g{group:05d}", _FINAL)
    by_file: dict[str, Counter[str]] = {}
    for f, pos, rows in _rows_by_file(gids):
        meta = _read_meta(plan, f).take(pa.array(rows))
        chosen = pa.table({"gid": gids[pos], "survivor": survivor[pos], "reason": reason[pos],
                           "doc_id": meta.column("doc_id"), "url": meta.column("url"),
                           "warc_file": meta.column("warc_file")}, schema=_FINAL)
        for warc, code in zip(meta.column("warc_file").to_pylist(), reason[pos].tolist()):
            by_file.setdefault(warc, Counter())[REASONS[code]] += 1
        destination = np.where(survivor[pos] >= 0, plan.group_of(np.maximum(survivor[pos], 0)), group)
        spill.add(chosen, destination)
    return _result([spill], removed_by_file={w: dict(c) for w, c in by_file.items()})


def _sample_hash(index: np.ndarray, seed: int) -> np.ndarray:
    return mix64(index.astype(np.uint64) ^ mix64(np.array([seed], np.uint64)))


def report_second(plan: DedupPlan, group: int, limit: int, seed: int) -> dict[str, Any]:
    """Per group of survivors: survivor_id and cluster_id of their removed documents (rows sent
    back to the removed document's group for the ordered removed.parquet), the cluster size
    histogram, and cluster-sample candidates: the group's `limit // 2` largest clusters and its
    `limit` with the smallest sample hash (what the driver needs to pick the global sample)."""
    table = _read_spilled(plan, "final", group, _FINAL)
    survivor = table.column("survivor").to_numpy()
    has = survivor >= 0
    survivor_id = pa.array([None] * table.num_rows, pa.string())
    cluster_id = np.where(has, plan.index_of(np.maximum(survivor, 0)), 0)
    survivor_meta: dict[int, dict[str, Any]] = {}
    heads = np.unique(survivor[has])
    if len(heads):
        ids = np.empty(len(heads), dtype=object)
        for f, pos, rows in _rows_by_file(heads):
            meta = _read_meta(plan, f).take(pa.array(rows))
            ids[pos] = meta.column("doc_id").to_pylist()
            for p, d, u, w in zip(pos.tolist(), *(meta.column(c).to_pylist() for c in ("doc_id", "url", "warc_file"))):
                survivor_meta[int(heads[p])] = {"doc_id": d, "url": u, "warc_file": w}
        survivor_id = pa.array(np.where(has, ids[np.searchsorted(heads, np.maximum(survivor, 0))], None), pa.string())
    rows = pa.table({"gid": table.column("gid"), "doc_id": table.column("doc_id"), "url": table.column("url"),
                     "warc_file": table.column("warc_file"),
                     "reason": pa.array([REASONS[c] for c in table.column("reason").to_numpy()], pa.string()),
                     "cluster_id": pa.array(cluster_id, mask=~has), "survivor_id": survivor_id})
    spill = _Spill(plan, "removed_rows", f"g{group:05d}", pa.schema([("gid", pa.int64()), *REMOVED_SCHEMA]))
    spill.add(rows, plan.group_of(table.column("gid").to_numpy()))

    order = np.flatnonzero(has)
    order = order[np.lexsort((plan.index_of(table.column("gid").to_numpy()[order]), survivor[order]))]
    cluster_heads, starts = np.unique(survivor[order], return_index=True)
    members = np.split(order, starts[1:]) if len(order) else []
    sizes = np.array([1 + len(m) for m in members], dtype=np.int64)
    head_index = plan.index_of(cluster_heads)
    by_size = np.lexsort((head_index, -sizes))[: limit // 2]
    by_hash = np.argsort(_sample_hash(head_index, seed), kind="stable")[:limit]

    def line(k: int) -> dict[str, Any]:
        shown = table.take(pa.array(members[k][:_CLUSTER_MEMBERS_SHOWN]))
        removed = [{"doc_id": d, "url": u, "warc_file": w, "reason": REASONS[r]} for d, u, w, r in zip(
            *(shown.column(c).to_pylist() for c in ("doc_id", "url", "warc_file", "reason")))]
        return {"cluster_id": int(head_index[k]), "size": int(sizes[k]), "survivor": survivor_meta[int(cluster_heads[k])],
                "removed": removed, "removed_not_shown": max(0, len(members[k]) - len(removed))}

    candidates = {int(k): line(int(k)) for k in np.union1d(by_size, by_hash)}
    return _result([spill], clusters=len(members), histogram=dict(Counter(sizes.tolist())),
                   largest=[(int(sizes[k]), int(head_index[k])) for k in by_size],
                   hashed=[(int(_sample_hash(head_index[k: k + 1], seed)[0]), int(head_index[k])) for k in by_hash],
                   lines={int(head_index[k]): v for k, v in candidates.items()})


def write_removed(plan: DedupPlan, out: str) -> dict[str, Any]:
    """dedup/removed.parquet, streamed group by group in document order."""
    sink = storage.AtomicFile(storage.join(out, "dedup", "removed.parquet"), plan.storage_options)
    try:
        with pq.ParquetWriter(sink.fh, REMOVED_SCHEMA, compression=storage.COMPRESSION) as writer:
            for group in range(plan.groups):
                table = _read_spilled(plan, "removed_rows", group, pa.schema([("gid", pa.int64()), *REMOVED_SCHEMA]))
                table = table.take(pc.sort_indices(table, sort_keys=[("gid", "ascending")]))
                writer.write_table(table.select(REMOVED_SCHEMA.names).cast(REMOVED_SCHEMA))
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return _result([])


# ---------------------------------------------------------------- driver

def _earlier_files(cfg: SieveConfig) -> list[tuple[str, str]]:
    """Every documents file of the `dedup.against` runs, each with its run's dedup/removed.parquet
    (what that run's dedup removed, read by the tasks): their curated documents, never their text."""
    opts, files = cfg.input.storage_options, []
    for run in cfg.dedup.against:
        if not storage.exists(storage.join(run, "dedup", "stats.json"), opts):
            raise ValueError(f"dedup.against: {run} has no finished dedup stage (dedup/stats.json missing)")
        paths = storage.listdir(storage.join(run, "documents"), ".parquet", opts)
        if not paths:
            raise ValueError(f"dedup.against: {run} has no documents/*.parquet")
        files += [(path, storage.join(run, "dedup", "removed.parquet")) for path in paths]
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


class _Waves:
    """Runs the waves of tasks from the driver and keeps only their small results."""

    def __init__(self, ray: Any, plan: DedupPlan, task_memory_mb: int | None = None) -> None:
        self.ray, self.plan = ray, plan
        self.options: dict[str, Any] = {"num_cpus": 1, "max_retries": 3}  # tasks rewrite their outputs: retry-safe
        if task_memory_mb:
            self.options["memory"] = task_memory_mb * 1024 * 1024
        self.plan_ref = ray.put(plan)
        self.seconds: dict[str, float] = {}
        self.bytes = 0
        self.task_rss_mb = 0.0
        self.waves = 0

    def replan(self, plan: DedupPlan) -> None:
        self.plan, self.plan_ref = plan, self.ray.put(plan)

    def run(self, fn: Callable[..., dict[str, Any]], args: list[tuple]) -> list[dict[str, Any]]:
        task = self.ray.remote(fn).options(**self.options)
        results = self.ray.get([task.remote(self.plan_ref, *a) for a in args])
        self.waves += 1
        self.bytes += sum(r["bytes"] for r in results)
        self.task_rss_mb = max([self.task_rss_mb] + [r["rss_mb"] for r in results])
        return results

    def groups(self, fn: Callable[..., dict[str, Any]], *extra: Any) -> list[dict[str, Any]]:
        return self.run(fn, [(g, *extra) for g in range(self.plan.groups)])

    def partitions(self, fn: Callable[..., dict[str, Any]], *before: Any) -> list[dict[str, Any]]:
        return self.run(fn, [(*before, p) for p in range(self.plan.partitions)])

    def timed(self, phase: str, started: float) -> None:
        self.seconds[phase] = round(self.seconds.get(phase, 0) + time.time() - started, 3)


def connected_components_rounds(waves: _Waves) -> tuple[str, int]:
    """Large-star then small-star over the spilled edges (cc00000, both directions) until a round
    changes nothing: then every component is a star around its smallest id (Kiveris et al. 2014,
    O(log^2 n) rounds). Returns the name of the last round's edges and the number of rounds."""
    name, rounds = "cc00000", 0
    while True:
        middle, name_next = f"cc{rounds * 2 + 1:05d}", f"cc{rounds * 2 + 2:05d}"
        large = sum(r["changes"] for r in waves.partitions(large_star, name, middle))
        small = sum(r["changes"] for r in waves.partitions(small_star, middle, name_next))
        name, rounds = name_next, rounds + 1
        if large == small == 0:
            return name, rounds
        if rounds >= _MAX_CC_ROUNDS:
            raise RuntimeError(f"dedup: connected components did not converge in {rounds} rounds")


def _near(waves: _Waves) -> dict[str, Any]:
    plan = waves.plan
    started = time.time()
    waves.groups(bands_group)
    waves.partitions(candidates_partition)
    waves.timed("candidates", started)
    started = time.time()
    first = waves.groups(verify_first)
    candidates = sum(r["candidates"] for r in first)
    edges = sum(r["edges"] for r in waves.groups(verify_second)) if plan.verify else candidates
    waves.timed("verify", started)
    started = time.time()
    name, rounds = connected_components_rounds(waves) if edges else ("cc00000", 0)
    stats = {"candidate_pairs": candidates, "verified_edges": edges, "rejected_candidates": candidates - edges,
             "components": 0, "largest_component": 0, "components_split_by_chain_check": 0,
             "removed_in_components_of_3_plus": 0, "components_rounds": rounds}
    if edges:
        waves.partitions(label_partition, name)
        waves.groups(members_group)
        results = waves.partitions(clusters_partition)
        stats.update(components=sum(r["components"] for r in results),
                     largest_component=max(r["largest"] for r in results),
                     components_split_by_chain_check=sum(r["chains_split"] for r in results),
                     removed_in_components_of_3_plus=sum(r["removed_in_chains"] for r in results))
    waves.timed("cluster", started)
    return stats


def _final_survivors(waves: _Waves) -> str:
    """Pointer jumping until every removed document points at where its chain ends; returns the
    name of the spilled final pointers."""
    name, rounds = "removed", 0
    while True:
        waves.groups(jump_ask, name)
        out = f"jump{rounds:03d}"
        changes = sum(r["changes"] for r in waves.groups(jump_answer, name, out))
        name, rounds = out, rounds + 1
        if changes == 0:
            return name
        if rounds > 2 * len(REASONS):
            raise RuntimeError("dedup: survivor chains did not resolve")


def _cluster_sample(results: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """dedup/clusters.jsonl lines: half the largest clusters, then clusters with the smallest
    seeded sample hash (a sample that no partitioning changes), each as the groups wrote it."""
    lines = {k: v for r in results for k, v in r["lines"].items()}
    largest = [head for _, head in sorted((-size, head) for r in results for size, head in r["largest"])][: limit // 2]
    chosen = set(largest)
    hashed = sorted(h for r in results for h in r["hashed"] if h[1] not in chosen)
    sample = sorted(head for _, head in hashed[: max(0, limit - len(largest))])
    return [lines[h] for h in largest + sample]


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
    plan = DedupPlan.from_config(cfg, out, doc_files)
    storage.remove_tree(plan.work, opts)
    waves = _Waves(init_ray(cfg), plan, cfg.run.task_memory_mb)

    scanned = waves.groups(scan_group)
    rows = {f: n for r in scanned for f, n in r["rows"].items()}
    plan = dataclasses.replace(plan, file_rows=tuple(rows[f] for f in range(len(plan.files))))
    waves.replan(plan)
    waves.timed("scan", started)
    t = time.time()
    if cfg.dedup.by_url:
        waves.partitions(exact_partition, "url")
    if cfg.dedup.exact:
        waves.partitions(exact_partition, "text")
    waves.timed("exact", t)
    near_stats = _near(waves) if cfg.dedup.near.enabled else {}
    t = time.time()
    boilerplate = 0
    if plan.line_enabled:
        waves.groups(lines_group)
        boilerplate = sum(r["lines"] for r in waves.partitions(boilerplate_partition))
    waves.timed("boilerplate", t)
    t = time.time()
    _remove_stale_curated(out, doc_files, opts)
    written = Counter()
    for r in waves.groups(write_group, out):
        written.update({k: r[k] for k in ("docs_out", "lines_removed", "docs_with_lines_removed") if k in r})
    waves.timed("write", t)
    t = time.time()
    final = _final_survivors(waves)
    firsts = waves.groups(report_first, final)
    seconds = waves.groups(report_second, cfg.dedup.near.sample_clusters, cfg.run.seed)
    waves.run(write_removed, [(out,)])
    lines = _cluster_sample(seconds, cfg.dedup.near.sample_clusters)
    storage.atomic_write_bytes(storage.join(out, "dedup", "clusters.jsonl"),
                               "".join(json.dumps(line) + "\n" for line in lines).encode(), opts)
    waves.timed("survivors", t)
    removed_by_file: dict[str, Counter[str]] = {}
    for r in firsts:
        for warc, counts in r["removed_by_file"].items():
            removed_by_file.setdefault(warc, Counter()).update(counts)
    removed_by_reason = Counter()
    for counts in removed_by_file.values():
        removed_by_reason.update(counts)
    histogram = Counter()
    for r in seconds:
        histogram.update(r["histogram"])
    n_new = sum(plan.file_rows[: plan.new_files])
    stats = {
        "config_hash": cfg.hash(), "fingerprint": fingerprint,
        "files": len(doc_files), "docs_in": n_new,
        **{k: int(written.get(k, 0)) for k in ("docs_out", "lines_removed", "docs_with_lines_removed")},
        **({"against_docs": sum(plan.file_rows[plan.new_files:])} if cfg.dedup.against else {}),
        "removed_by_reason": {r: removed_by_reason[r] for r in REASONS[1:] if removed_by_reason[r]},
        "removed_by_file": {w: dict(c) for w, c in sorted(removed_by_file.items())},
        "lsh": {"num_perm": plan.minhash.num_perm, "ngram": plan.minhash.ngram, "bands": plan.bands,
                "rows": plan.rows, "threshold": plan.threshold,
                "p_candidate_at_threshold": round(candidate_probability(plan.threshold, plan.bands, plan.rows), 4),
                "partitions": plan.partitions, "bucket_hubs": plan.bucket_hubs, "verify": cfg.dedup.near.verify,
                "verify_with": plan.verify_with},
        "near": near_stats,
        "clusters": sum(r["clusters"] for r in seconds),
        "cluster_size_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "boilerplate_lines": int(boilerplate),
        "scale": {"groups": plan.groups, "partitions": plan.partitions, "waves": waves.waves,
                  "bytes_spilled": int(waves.bytes), "task_peak_rss_mb": round(waves.task_rss_mb, 1)},
        "phase_seconds": waves.seconds,
        "seconds": round(time.time() - started, 3),
    }
    storage.remove_tree(plan.work, opts)
    if stats["docs_out"] + sum(stats["removed_by_reason"].values()) != n_new:
        raise AssertionError(f"dedup accounting: {stats['docs_out']} kept + {stats['removed_by_reason']} "
                             f"removed != {n_new} documents in {len(doc_files)} files")
    storage.atomic_write_json(marker, stats, opts)
    return stats
