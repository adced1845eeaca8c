"""The tokenize stage: train (or load) the tokenizer, encode the curated documents on Ray, write shards.

    curated/*.parquet --count pre-tokens of a sample (1 task / file)--> train_bpe
        -> OUT/tokenizer/{vocab.json, merges.txt, tokenizer.json (sha256, sample)}
    curated/*.parquet --encode (1 task / file)--> tokens/.parts/<stem>.parquet (one row group per shard)
    parts --write (1 task / shard)--> tokens/shard-NNNNN.parquet + tokens/manifest.json
    parts --write (1 task, shards in order, beside them)--> tokens/{train,val}.bin (+ .idx: megatron)

The number of shards is fixed before encoding, from the curated text size (Parquet metadata) and
the tokenizer's bytes per token on a sample, so each encode task can group its documents by shard.
Resumable per part: tokenizer/tokenizer.json and tokens/manifest.json carry their fingerprints
(`pipeline.stages.fingerprint`): a new shard size re-encodes with the same tokenizer.

Document text is ordinary text: a page that contains `<|endoftext|>` (or any configured special
token) is trained on and encoded as bytes and merges, so each row holds exactly one special id,
the end-of-text id the stage appends (the manifest counts such pages in `special_text_docs`).
"""
from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.runtime import init_ray
from pipeline.stages.fingerprint import files_fingerprint, matching_marker, shards_fingerprint, tokenizer_fingerprint
from pipeline.tokens.shards import doc_hash, part_schema, shard_manifest, token_dtype, write_part
from pipeline.tokens.tokenizer import Tokenizer, count_pretokens, train_bpe_from_counts
from pipeline.tokens.writers import flat_formats, write_tokens

REQUIRED_COLUMNS = ["doc_id", "url", "warc_file", "text"]
ESTIMATE_SAMPLE_BYTES = 1 << 20


def text_bytes(path: str, opts: dict[str, Any]) -> int:
    """Approximate UTF-8 size of a curated file's `text` column, from its Parquet metadata only
    (and a clear error, before any work starts, if a column the stage reads is missing)."""
    fs, p = storage.fs_and_path(path, opts)
    with fs.open(p, "rb") as fh:
        meta = pq.ParquetFile(fh).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: curated file lacks column(s) {missing} needed by the tokenize stage")
    column = names.index("text")
    return sum(meta.row_group(g).column(column).total_uncompressed_size for g in range(meta.num_row_groups))


def count_sample(path: str, max_bytes: int, opts: dict[str, Any]) -> tuple[Counter[bytes], int, int]:
    """Pre-token counts of a curated file's first `max_bytes` of text: (counts, docs, bytes).

    Each document is counted as `encode_file` encodes it: as ordinary text, special-token strings
    included (they are the page's words, not delimiters)."""
    counts: Counter[bytes] = Counter()
    docs = used = 0
    for batch in storage.iter_parquet_batches(path, columns=["text"], storage_options=opts):
        for text in batch.column(0).to_pylist():
            if used >= max_bytes:
                return counts, docs, used
            if text:
                counts.update(count_pretokens(text, []))
                docs += 1
                used += len(text.encode("utf-8", "surrogatepass"))
    return counts, docs, used


def _sample_text(files: list[str], max_bytes: int, opts: dict[str, Any]) -> str:
    """The first `max_bytes` or so of curated text (to measure bytes per token)."""
    texts, used = [], 0
    for path in files:
        for batch in storage.iter_parquet_batches(path, columns=["text"], storage_options=opts):
            for text in batch.column(0).to_pylist():
                if text:
                    texts.append(text)
                    used += len(text)
                if used >= max_bytes:
                    return "".join(texts)
    return "".join(texts)


def _local_copy(path: str, opts: dict[str, Any]) -> Path:
    if not storage.is_remote(path):
        return Path(path)
    tmp = Path(tempfile.mkdtemp(prefix="sieve-tok-"))
    for name in ("vocab.json", "merges.txt"):
        fs, p = storage.fs_and_path(storage.join(path, name), opts)
        (tmp / name).write_bytes(fs.cat_file(p))
    return tmp


def loaded_tokenizer_sha256(cfg: SieveConfig) -> str | None:
    """sha256 of vocab.json + merges.txt under tokenizer.path (None when training)."""
    if not cfg.tokenizer.path:
        return None
    opts = cfg.input.storage_options
    return hashlib.sha256(b"".join(storage.read_bytes(storage.join(cfg.tokenizer.path, name), opts)
                                   for name in ("vocab.json", "merges.txt"))).hexdigest()


def prepare_tokenizer(cfg: SieveConfig, out: str, curated_files: list[str], sizes: list[int], ray: Any,
                      fingerprint: str) -> tuple[Tokenizer, dict[str, Any]]:
    """(tokenizer, its info). Reuses OUT/tokenizer/ when its
    tokenizer.json carries `fingerprint`; else loads cfg.tokenizer.path, or trains on an even
    fraction of each curated file's text (one Ray task per file counts its pre-tokens), and saves
    it into OUT/tokenizer/ with its sha256 (tokenizer.json last: it marks the files complete)."""
    opts, tcfg = cfg.input.storage_options, cfg.tokenizer
    tokenizer_dir = storage.join(out, "tokenizer")
    marker = storage.join(tokenizer_dir, "tokenizer.json")
    if (stored := matching_marker(marker, fingerprint, opts)) is not None:
        local = _local_copy(tokenizer_dir, opts)
        return Tokenizer.from_files(local / "vocab.json", local / "merges.txt", tcfg.special_tokens), stored
    storage.remove_file(marker, opts)
    info: dict[str, Any] = {"fingerprint": fingerprint}
    if tcfg.path:
        local = _local_copy(tcfg.path, opts)
        tokenizer = Tokenizer.from_files(local / "vocab.json", local / "merges.txt", tcfg.special_tokens)
        info["loaded_from"] = tcfg.path
    else:
        started = time.time()
        fraction = min(1.0, tcfg.train_sample_bytes / max(1, sum(sizes)))
        count = ray.remote(count_sample)
        pending = [count.remote(path, max(1, int(size * fraction)), opts)
                   for path, size in zip(curated_files, sizes)]
        counts: Counter[bytes] = Counter()
        docs = used = 0
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            part_counts, part_docs, part_bytes = ray.get(done[0])
            counts.update(part_counts)
            docs, used = docs + part_docs, used + part_bytes
        vocab, merges = train_bpe_from_counts(counts, tcfg.vocab_size, tcfg.special_tokens)
        tokenizer = Tokenizer(vocab, merges, tcfg.special_tokens)
        info.update(trained_on_docs=docs, trained_on_bytes=used, train_seconds=round(time.time() - started, 3))
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path, merges_path = tokenizer.save(tmp)
        digest = hashlib.sha256(vocab_path.read_bytes() + merges_path.read_bytes()).hexdigest()
        for path in (vocab_path, merges_path):
            storage.atomic_write_bytes(storage.join(tokenizer_dir, path.name), path.read_bytes(), opts)
    info.update(sha256=digest, sha256_of="vocab.json + merges.txt", vocab_size=len(tokenizer.vocab),
                special_tokens=tokenizer.special_ids, merges=len(tokenizer.merges),
                fast_path=tokenizer.fast_path_available())
    storage.atomic_write_json(marker, info, opts)
    return tokenizer, info


def encode_file(path: str, part_path: str, tokenizer: Tokenizer, eot_id: int, seed: int, num_shards: int,
                opts: dict[str, Any]) -> dict[str, int]:
    """Encode one curated file into a part: ids + end-of-text per document, grouped by shard.

    The text is ordinary text (no special id from it), so `eot_id` is each row's only special id,
    at its end; documents whose text holds a special-token string are counted. Rows without a
    doc_id or text are skipped and counted."""
    dtype = token_dtype(len(tokenizer.vocab))
    values: list[np.ndarray] = []
    lengths: list[int] = []
    columns: dict[str, list] = {"doc_id": [], "url": [], "source": [], "doc_hash": []}
    skipped, special_text_docs, fallbacks_before = 0, 0, tokenizer.reference_fallbacks
    for batch in storage.iter_parquet_batches(path, columns=REQUIRED_COLUMNS, storage_options=opts):
        for doc_id, url, source, text in zip(*(batch.column(c).to_pylist() for c in REQUIRED_COLUMNS)):
            if doc_id is None or text is None:
                skipped += 1
                continue
            ids = tokenizer.encode_fast(text)
            ids.append(eot_id)
            special_text_docs += any(special in text for special in tokenizer.special_tokens)
            values.append(np.asarray(ids, dtype=dtype.to_pandas_dtype()))
            lengths.append(len(ids))
            columns["doc_id"].append(doc_id)
            columns["url"].append(url)
            columns["source"].append(source)
            columns["doc_hash"].append(doc_hash(doc_id, seed))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    flat = np.concatenate(values) if values else np.zeros(0, dtype=dtype.to_pandas_dtype())
    schema = part_schema(len(tokenizer.vocab)).remove(part_schema(len(tokenizer.vocab)).get_field_index("shard"))
    table = pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, dtype)),
                      "num_tokens": pa.array(lengths, pa.int32()), **columns}, schema=schema)
    write_part(table, num_shards, part_path, opts)
    return {"docs": len(lengths), "tokens": int(offsets[-1]), "skipped": skipped, "special_text_docs": special_text_docs,
            "reference_fallbacks": tokenizer.reference_fallbacks - fallbacks_before}


def estimate_shards(tokenizer: Tokenizer, curated_files: list[str], total_text_bytes: int, target_tokens: int,
                    opts: dict[str, Any]) -> tuple[int, float]:
    """(number of shards, measured UTF-8 bytes per token) for the curated text."""
    sample = _sample_text(curated_files, ESTIMATE_SAMPLE_BYTES, opts)
    tokens = len(tokenizer.encode_fast(sample))
    bytes_per_token = len(sample.encode("utf-8", "surrogatepass")) / tokens if tokens else 1.0
    return max(1, math.ceil(total_text_bytes / bytes_per_token / target_tokens)), bytes_per_token


def write_outputs(cfg: SieveConfig, parts: list[str], num_shards: int, tokens_dir: str, vocab_size: int,
                  total_docs: int, ray: Any) -> dict[str, Any]:
    """Every format of `shards.formats` from the encoded parts, as manifest entries: one Ray task
    per Parquet shard, and beside them one task for the flat formats (they take the shards in order)."""
    opts, formats = cfg.input.storage_options, cfg.shards.formats
    write = ray.remote(write_tokens)
    tasks = [write.remote(["parquet"], parts, [k], tokens_dir, vocab_size, total_docs, cfg.shards, opts)
             for k in range(num_shards)]
    flat = flat_formats(formats)
    if flat:
        tasks.append(write.remote(flat, parts, range(num_shards), tokens_dir, vocab_size, total_docs, cfg.shards, opts))
    results = ray.get(tasks)
    outputs = {"parquet": [entry for result in results[:num_shards] for entry in result["parquet"]]}
    if flat:
        outputs.update(results[-1])
    if "bin" in formats and "bin" not in outputs:  # written by the megatron writer
        outputs["bin"] = outputs["megatron"]
    return outputs


def tokenize_fingerprints(cfg: SieveConfig, curated: str | list[str]) -> tuple[str, str]:
    """(tokenizer, shards) fingerprints for the curated documents: their fingerprint, or their
    files (identified by name, size and mtime) for a caller that has none."""
    if not isinstance(curated, str):
        curated = files_fingerprint(curated, cfg.input.storage_options)
    tokenizer_fp = tokenizer_fingerprint(cfg, curated, loaded_tokenizer_sha256(cfg))
    return tokenizer_fp, shards_fingerprint(cfg, tokenizer_fp, curated)


def run_tokenize(cfg: SieveConfig, out: str, curated_files: list[str], curated: str | None = None) -> dict[str, Any]:
    """Tokenizer + token shards for the curated documents (fingerprint `curated`); returns the
    manifest. tokenizer/ and tokens/ are each reused when their stored fingerprint matches."""
    opts = cfg.input.storage_options
    tokens_dir = storage.join(out, "tokens")
    manifest_path = storage.join(tokens_dir, "manifest.json")
    tokenizer_fp, shards_fp = tokenize_fingerprints(cfg, curated_files if curated is None else curated)
    if (stored := matching_marker(manifest_path, shards_fp, opts)) is not None:
        return stored
    started = time.time()
    storage.remove_tree(tokens_dir, opts)  # shards of an older run must not mix with these
    ray = init_ray(cfg)
    sizes = [text_bytes(path, opts) for path in curated_files]
    tokenizer, info = prepare_tokenizer(cfg, out, curated_files, sizes, ray, tokenizer_fp)
    eot_id = tokenizer.special_ids[cfg.tokenizer.end_of_text]
    num_shards, bytes_per_token = estimate_shards(tokenizer, curated_files, sum(sizes), cfg.shards.target_tokens, opts)

    tokenizer_ref = ray.put(tokenizer)
    encode = ray.remote(encode_file)
    parts = [storage.join(tokens_dir, ".parts", f"{i:05d}-{path.rsplit('/', 1)[-1]}") for i, path in enumerate(curated_files)]
    counts = ray.get([encode.remote(path, part, tokenizer_ref, eot_id, cfg.shards.seed, num_shards, opts)
                      for path, part in zip(curated_files, parts)])
    outputs = write_outputs(cfg, parts, num_shards, tokens_dir, len(tokenizer.vocab), sum(c["docs"] for c in counts), ray)
    storage.remove_tree(storage.join(tokens_dir, ".parts"), opts)
    manifest = shard_manifest(
        outputs.pop("parquet"), len(tokenizer.vocab), tokenizer.special_ids, eot_id, cfg.shards.seed,
        formats=cfg.shards.formats, **outputs,
        config_hash=cfg.hash(), fingerprint=shards_fp, tokenizer_sha256=info["sha256"], tokenizer_dir="../tokenizer",
        skipped_docs=sum(c["skipped"] for c in counts),
        special_text_docs=sum(c["special_text_docs"] for c in counts),
        reference_fallbacks=sum(c["reference_fallbacks"] for c in counts),
        bytes_per_token=round(bytes_per_token, 4), tokenizer=info, seconds=round(time.time() - started, 3))
    storage.atomic_write_json(manifest_path, manifest, opts)
    return manifest
