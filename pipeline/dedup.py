"""The dedup stage on Ray: exact, near-duplicate (MinHash LSH) and boilerplate-line removal.

    documents/*.parquet --scan (1 task / file)--> per-doc keys, band keys and line hashes,
        each shuffled by hash into P partitions (object refs, never gathered whole)
    driver: exact dedup on text hash (and URL) -> excluded docs
    band partitions --(1 task / partition)--> candidate pairs from colliding buckets
    driver: candidates verified on exact shingle Jaccard of their texts (or on signature Jaccard;
        either read one documents file at a time, and only for documents in candidate pairs),
        clustered without chains (filters.dedup.cluster), one survivor per cluster
    line partitions --(1 task / partition)--> lines seen in more than N surviving documents
    documents --write (1 task / file)--> curated/*.parquet without duplicates or boilerplate lines

Partition tasks hold only their partition; the driver holds a few numbers per document (ids,
hashes, quality, length) and the candidate pairs. Resumable: a finished stage leaves
dedup/stats.json with the config hash, and a rerun returns it.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from filters.dedup import (band_keys, bucket_pairs, cluster, exact_jaccard, iter_dedup_keys, lsh_params,
                           shingle_hashes, signature_jaccard)
from pipeline import storage
from pipeline.config import SieveConfig

REASON_EXACT, REASON_URL, REASON_NEAR, REASON_EMPTY = (
    "dedup:exact", "dedup:url", "dedup:near", "dedup:empty_after_line_dedup")
_SCAN_COLUMNS = ["doc_id", "url", "warc_file", "text", "minhash", "text_hash"]


def _gid(file_index: int, local: np.ndarray) -> np.ndarray:
    return (np.int64(file_index) << np.int64(32)) | local.astype(np.int64)


def _line_hashes(text: str, min_chars: int) -> list[int]:
    """Hashes of the distinct lines of a document that are long enough to count."""
    return list({xxhash.xxh3_64_intdigest(s.encode("utf-8", "surrogatepass"))
                 for s in (line.strip() for line in text.split("\n")) if len(s) >= min_chars})


def _split(values: np.ndarray, keys: np.ndarray, partitions: int) -> list[np.ndarray]:
    part = (keys % np.uint64(partitions)).astype(np.int64)
    return [values[part == p] for p in range(partitions)]


def scan_file(path: str, file_index: int, bands: int, rows: int, partitions: int, min_line_chars: int,
              opts: dict[str, Any]) -> tuple:
    """Map task: (meta, signatures, *band partitions, *line partitions) of one documents file."""
    table = storage.read_parquet(path, columns=_SCAN_COLUMNS + (
        ["quality_score"] if "quality_score" in _schema_names(path, opts) else []), storage_options=opts)
    n = table.num_rows
    gids = _gid(file_index, np.arange(n))
    signatures = np.asarray(table.column("minhash").combine_chunks().flatten(), dtype=np.uint32).reshape(n, -1) \
        if n else np.zeros((0, bands * rows), dtype=np.uint32)
    quality = (table.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64)
               if "quality_score" in table.column_names else np.zeros(n))
    meta = {
        "gid": gids,
        "doc_id": table.column("doc_id").to_pylist(),
        "url": table.column("url").to_pylist(),
        "warc_file": table.column("warc_file").to_pylist(),
        "text_hash": table.column("text_hash").to_numpy(zero_copy_only=False).astype(np.uint64),
        "url_hash": iter_dedup_keys(table.column("url").to_pylist()),
        "quality": np.nan_to_num(quality, nan=0.0),
        "length": pc.utf8_length(table.column("text")).to_numpy(zero_copy_only=False).astype(np.int64),
    }
    keys = band_keys(signatures, bands, rows)  # (n, bands)
    flat_keys, flat_gids = keys.reshape(-1), np.repeat(gids, bands)
    band_parts = [np.stack([k, g.astype(np.uint64)]) for k, g in
                  zip(_split(flat_keys, flat_keys, partitions), _split(flat_gids, flat_keys, partitions))]
    line_hash_lists = [_line_hashes(t, min_line_chars) for t in table.column("text").to_pylist()]
    line_hashes = np.fromiter((h for hs in line_hash_lists for h in hs), dtype=np.uint64)
    line_gids = np.repeat(gids, [len(hs) for hs in line_hash_lists]).astype(np.uint64)
    line_parts = [np.stack([h, g]) for h, g in
                  zip(_split(line_hashes, line_hashes, partitions), _split(line_gids, line_hashes, partitions))]
    return (meta, signatures, *band_parts, *line_parts)


def _schema_names(path: str, opts: dict[str, Any]) -> list[str]:
    import pyarrow.parquet as pq

    fs, p = storage.fs_and_path(path, opts)
    with fs.open(p, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow.names


def partition_candidates(excluded: np.ndarray, *parts: np.ndarray) -> np.ndarray:
    """Reduce task: candidate pairs (gid, gid) from the colliding band buckets of one partition."""
    data = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    keys, gids = data[0], data[1].astype(np.int64)
    keep = ~np.isin(gids, excluded)
    return bucket_pairs(keys[keep], gids[keep])


def partition_boilerplate(excluded: np.ndarray, max_repeats: int, *parts: np.ndarray) -> np.ndarray:
    """Reduce task: line hashes found in more than `max_repeats` surviving documents."""
    data = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    hashes, gids = data[0], data[1].astype(np.int64)
    hashes = hashes[~np.isin(gids, excluded)]
    values, counts = np.unique(hashes, return_counts=True)
    return values[counts > max_repeats]


def write_curated(path: str, out_path: str, removed_local: np.ndarray, boilerplate: np.ndarray,
                  min_line_chars: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Write task: a documents file without its removed docs and boilerplate lines."""
    table = storage.read_parquet(path, storage_options=opts)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[removed_local] = False
    table = table.filter(pa.array(keep))
    if "minhash" in table.column_names:
        table = table.drop_columns(["minhash"])
    boiler = set(boilerplate.tolist())
    texts, lines_removed, non_empty = [], [], []
    for text in table.column("text").to_pylist():
        kept_lines, dropped = [], 0
        for line in text.split("\n"):
            stripped = line.strip()
            if (len(stripped) >= min_line_chars and boiler
                    and xxhash.xxh3_64_intdigest(stripped.encode("utf-8", "surrogatepass")) in boiler):
                dropped += 1
            else:
                kept_lines.append(line)
        new_text = "\n".join(kept_lines).strip()
        texts.append(new_text)
        lines_removed.append(dropped)
        non_empty.append(bool(new_text))
    table = table.set_column(table.column_names.index("text"), "text", pa.array(texts, pa.string()))
    table = table.append_column("lines_removed", pa.array(lines_removed, pa.int32()))
    emptied = table.filter(pa.array([not x for x in non_empty], pa.bool_()))
    table = table.filter(pa.array(non_empty, pa.bool_()))
    storage.write_parquet(table, out_path, opts)
    return {"kept": table.num_rows, "lines_removed": int(sum(lines_removed)),
            "emptied_doc_ids": emptied.column("doc_id").to_pylist()}


def _survivor_rank(meta: dict[str, np.ndarray], policy: list[str], doc_ids: np.ndarray) -> np.ndarray:
    """rank[i] = position of doc i in survivor order (0 = keep first)."""
    keys = {"quality": -meta["quality"], "length": -meta["length"], "doc_id": doc_ids}
    order = np.lexsort([keys[k] for k in reversed(policy + ["doc_id"])])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _group_duplicates(values: np.ndarray, rank: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """survivor index per doc for equal `values` among `alive` docs (best rank survives)."""
    survivor = np.arange(len(values))
    idx = np.flatnonzero(alive)
    order = idx[np.lexsort((rank[idx], values[idx]))]
    if len(order) == 0:
        return survivor
    sorted_values = values[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    heads = np.repeat(order[starts], np.diff(np.append(starts, len(order))))
    survivor[order] = heads
    return survivor


def run_dedup(cfg: SieveConfig, out: str, doc_files: list[str]) -> dict[str, Any]:
    """The dedup stage (see module docstring); returns its stats, also in dedup/stats.json."""
    opts = cfg.input.storage_options
    marker = storage.join(out, "dedup", "stats.json")
    if storage.exists(marker, opts):
        stored = storage.read_json(marker, opts)
        if stored.get("config_hash") == cfg.hash():
            return stored
    from pipeline.run import init_ray

    ray = init_ray(cfg)
    started = time.time()
    near, line_cfg = cfg.dedup.near, cfg.dedup.line
    minhash = cfg.filters.get("minhash")
    num_perm, ngram = (minhash.num_perm, minhash.ngram) if minhash is not None else (128, 5)
    if near.num_bands and near.rows_per_band:
        bands, rows = near.num_bands, near.rows_per_band
    else:
        bands, rows = lsh_params(near.threshold, num_perm)
    partitions = near.partitions
    scan = ray.remote(scan_file).options(num_returns=2 + 2 * partitions)
    scans = [scan.remote(path, i, bands, rows, partitions, line_cfg.min_line_chars, opts)
             for i, path in enumerate(doc_files)]
    metas = ray.get([s[0] for s in scans])
    sig_refs = [s[1] for s in scans]

    # ---- exact dedup (driver: a few numbers per document)
    gid = np.concatenate([m["gid"] for m in metas]) if metas else np.zeros(0, np.int64)
    doc_ids = np.array([d for m in metas for d in m["doc_id"]], dtype=object)
    meta = {k: np.concatenate([m[k] for m in metas]) if metas else np.zeros(0)
            for k in ("text_hash", "url_hash", "quality", "length")}
    n = len(gid)
    rank = _survivor_rank(meta, list(near.survivor), doc_ids.astype(str)) if n else np.zeros(0, np.int64)
    survivor = np.arange(n)
    reason = np.full(n, "", dtype=object)
    alive = np.ones(n, dtype=bool)
    for enabled, key, why in ((cfg.dedup.by_url, "url_hash", REASON_URL), (cfg.dedup.exact, "text_hash", REASON_EXACT)):
        if enabled and n:
            groups = _group_duplicates(meta[key], rank, alive)
            dup = alive & (groups != np.arange(n))
            survivor[dup], reason[dup] = groups[dup], why
            alive &= ~dup

    # ---- near dedup: candidates per partition, verified + clustered on the driver
    candidates = np.zeros((0, 2), dtype=np.int64)
    edges = np.zeros((0, 2), dtype=np.int64)
    cluster_sizes: Counter[int] = Counter()
    if near.enabled and n:
        excluded_ref = ray.put(gid[~alive])
        reduce = ray.remote(partition_candidates)
        parts = ray.get([reduce.remote(excluded_ref, *[s[2 + p] for s in scans]) for p in range(partitions)])
        candidates = np.unique(np.concatenate(parts), axis=0) if parts and sum(map(len, parts)) else candidates
        index_of = {int(g): i for i, g in enumerate(gid)}
        nodes = np.unique(candidates.reshape(-1))
        local = {int(g): j for j, g in enumerate(nodes)}
        if near.verify_with == "text":
            shingle_sets = [set(shingle_hashes(t, ngram).tolist()) for t in _gather_texts(doc_files, nodes, opts)]

            def similar(i: int, j: int) -> bool:
                return not near.verify or exact_jaccard(shingle_sets[i], shingle_sets[j]) >= near.threshold
        else:
            sigs = _gather_signatures(ray, sig_refs, nodes)

            def similar(i: int, j: int) -> bool:
                return not near.verify or signature_jaccard(sigs[i], sigs[j]) >= near.threshold

        pairs = np.array([[local[int(a)], local[int(b)]] for a, b in candidates], dtype=np.int64).reshape(-1, 2)
        if len(pairs):
            ok = np.array([similar(int(a), int(b)) for a, b in pairs])
            edges = pairs[ok]
        node_rank = rank[[index_of[int(g)] for g in nodes]] if len(nodes) else np.zeros(0, np.int64)
        # verify=false keeps plain connected components (chains merge): every member joins the center.
        node_survivor = cluster(len(nodes), edges, node_rank, similar)
        for j, s in enumerate(node_survivor):
            if s != j:
                i = index_of[int(nodes[j])]
                survivor[i], reason[i] = index_of[int(nodes[s])], REASON_NEAR
                alive[i] = False
        cluster_sizes = Counter(Counter(node_survivor.tolist()).values())

    # ---- boilerplate lines among the survivors
    boilerplate = np.zeros(0, dtype=np.uint64)
    if line_cfg.enabled and n:
        excluded_ref = ray.put(gid[~alive])
        reduce_lines = ray.remote(partition_boilerplate)
        parts = ray.get([reduce_lines.remote(excluded_ref, line_cfg.max_repeats, *[s[2 + partitions + p] for s in scans])
                         for p in range(partitions)])
        boilerplate = np.concatenate(parts) if parts else boilerplate
    boilerplate_ref = ray.put(boilerplate)

    # ---- write curated files
    write = ray.remote(write_curated)
    file_of = (gid >> 32).astype(np.int64)
    local_of = (gid & 0xFFFFFFFF).astype(np.int64)
    writes = []
    for i, path in enumerate(doc_files):
        stem = path.rsplit("/", 1)[-1]
        removed_local = local_of[(file_of == i) & ~alive]
        writes.append(write.remote(path, storage.join(out, "curated", stem), removed_local, boilerplate_ref,
                                   line_cfg.min_line_chars if line_cfg.enabled else 1 << 30, opts))
    written = ray.get(writes)
    emptied = {d for w in written for d in w["emptied_doc_ids"]}

    # ---- removed.parquet, clusters sample, stats
    removed_idx = np.flatnonzero(~alive)
    warc_of = [w for m in metas for w in m["warc_file"]]
    url_of = [u for m in metas for u in m["url"]]
    removed_rows = {
        "doc_id": [doc_ids[i] for i in removed_idx] + sorted(emptied),
        "warc_file": [warc_of[i] for i in removed_idx] + [""] * len(emptied),
        "reason": [reason[i] for i in removed_idx] + [REASON_EMPTY] * len(emptied),
        "survivor_id": [doc_ids[survivor[i]] for i in removed_idx] + [""] * len(emptied),
    }
    if emptied:
        emptied_warc = {d: warc_of[i] for i, d in enumerate(doc_ids) if d in emptied}
        removed_rows["warc_file"][len(removed_idx):] = [emptied_warc[d] for d in sorted(emptied)]
    removed_rows["cluster_id"] = list(removed_rows["survivor_id"])
    storage.write_parquet(pa.table(removed_rows), storage.join(out, "dedup", "removed.parquet"), opts)
    _write_cluster_sample(out, opts, survivor, reason, doc_ids, url_of, near.sample_clusters)

    by_reason = Counter(removed_rows["reason"])
    per_file: dict[str, dict[str, int]] = {}
    for warc, why in zip(removed_rows["warc_file"], removed_rows["reason"]):
        per_file.setdefault(warc, {}).setdefault(why, 0)
        per_file[warc][why] += 1
    stats = {
        "config_hash": cfg.hash(),
        "docs_in": int(n), "docs_out": int(sum(w["kept"] for w in written)),
        "removed_by_reason": dict(by_reason), "removed_by_file": per_file,
        "lsh": {"num_perm": num_perm, "bands": bands, "rows": rows, "threshold": near.threshold,
                "partitions": partitions, "verify": near.verify, "verify_with": near.verify_with},
        "candidate_pairs": int(len(candidates)), "verified_edges": int(len(edges)),
        "cluster_size_histogram": {str(k): int(v) for k, v in sorted(cluster_sizes.items())},
        "boilerplate_lines": int(len(boilerplate)),
        "lines_removed": int(sum(w["lines_removed"] for w in written)),
        "seconds": round(time.time() - started, 3),
    }
    storage.atomic_write_json(marker, stats, opts)
    return stats


def _gather_signatures(ray: Any, sig_refs: list, nodes: np.ndarray) -> np.ndarray:
    """Signature rows of `nodes` (gids), fetching one file's signatures at a time."""
    if len(nodes) == 0:
        return np.zeros((0, 0), dtype=np.uint32)
    files = nodes >> 32
    rows = None
    for f in np.unique(files):
        sigs = ray.get(sig_refs[int(f)])
        if rows is None:
            rows = np.zeros((len(nodes), sigs.shape[1]), dtype=np.uint32)
        mask = files == f
        rows[mask] = sigs[(nodes[mask] & 0xFFFFFFFF).astype(np.int64)]
    return rows


def _gather_texts(doc_files: list[str], nodes: np.ndarray, opts: dict[str, Any]) -> list[str]:
    """Texts of `nodes` (gids), reading one documents file's text column at a time."""
    texts: list[str] = [""] * len(nodes)
    files = nodes >> 32
    for f in np.unique(files):
        column = storage.read_parquet(doc_files[int(f)], columns=["text"], storage_options=opts).column("text")
        for j in np.flatnonzero(files == f):
            texts[j] = column[int(nodes[j] & 0xFFFFFFFF)].as_py()
    return texts


def _write_cluster_sample(out: str, opts: dict[str, Any], survivor: np.ndarray, reason: np.ndarray,
                          doc_ids: np.ndarray, urls: list[str], limit: int) -> None:
    """dedup/clusters.jsonl: the largest clusters, survivor and removed members with their URLs."""
    import json

    members: dict[int, list[int]] = {}
    for i, s in enumerate(survivor):
        if s != i:
            members.setdefault(int(s), []).append(i)
    biggest = sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]
    lines = [json.dumps({"survivor": {"doc_id": doc_ids[s], "url": urls[s]}, "size": 1 + len(m),
                         "removed": [{"doc_id": doc_ids[i], "url": urls[i], "reason": reason[i]} for i in m]})
             for s, m in biggest]
    storage.atomic_write_bytes(storage.join(out, "dedup", "clusters.jsonl"), ("\n".join(lines) + "\n").encode(), opts)
