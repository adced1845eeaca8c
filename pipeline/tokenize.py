"""The tokenize stage: train (or load) the tokenizer, encode the curated documents on Ray, write shards.

    curated/*.parquet --sample--> train_bpe -> OUT/tokenizer/{vocab.json, merges.txt, tokenizer.json}
    curated/*.parquet --encode (1 task / file)--> tokens/.parts/<stem>.parquet
    parts --write (1 task / shard)--> tokens/shard-NNNNN.parquet + tokens/manifest.json

Resumable at stage granularity: tokens/manifest.json carries the config hash.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.shards import SCHEMA_VERSION, doc_bucket, shard_name, token_dtype, write_shard
from pipeline.tokenizer import Tokenizer, train_bpe_from_texts

EOT = "<|endoftext|>"


def _sample_texts(files: list[str], max_bytes: int, opts: dict[str, Any]) -> Iterator[str]:
    """Kept text for training, file by file, until `max_bytes` of UTF-8 (deterministic order)."""
    used = 0
    for path in files:
        for batch in storage.iter_parquet_batches(path, columns=["text"], storage_options=opts):
            for text in batch.column(0).to_pylist():
                yield text
                used += len(text.encode("utf-8", "surrogatepass"))
                if used >= max_bytes:
                    return


def _eot_token(specials: list[str]) -> str:
    if not specials:
        raise ValueError("tokenizer.special_tokens must contain an end-of-text token (e.g. <|endoftext|>)")
    return EOT if EOT in specials else specials[0]


def prepare_tokenizer(cfg: SieveConfig, out: str, curated_files: list[str]) -> tuple[Tokenizer, dict[str, Any]]:
    """Load cfg.tokenizer.path or train on the kept text; save it into OUT/tokenizer/."""
    opts, tcfg = cfg.input.storage_options, cfg.tokenizer
    info: dict[str, Any] = {}
    if tcfg.path:
        local = _local_copy(tcfg.path, opts)
        tokenizer = Tokenizer.from_files(local / "vocab.json", local / "merges.txt", tcfg.special_tokens)
        info["loaded_from"] = tcfg.path
    else:
        started = time.time()
        texts = list(_sample_texts(curated_files, tcfg.train_sample_bytes, opts))
        vocab, merges = train_bpe_from_texts(texts, tcfg.vocab_size, tcfg.special_tokens)
        tokenizer = Tokenizer(vocab, merges, tcfg.special_tokens)
        info.update(trained_on_docs=len(texts), trained_on_bytes=sum(len(t.encode("utf-8", "surrogatepass"))
                                                                      for t in texts),
                    train_seconds=round(time.time() - started, 3))
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path, merges_path = tokenizer.save(tmp)
        digest = hashlib.sha256(vocab_path.read_bytes() + merges_path.read_bytes()).hexdigest()
        for path in (vocab_path, merges_path):
            storage.atomic_write_bytes(storage.join(out, "tokenizer", path.name), path.read_bytes(), opts)
    info.update(sha256=digest, vocab_size=len(tokenizer.vocab), special_tokens=tokenizer.special_ids,
                merges=len(tokenizer.merges))
    storage.atomic_write_json(storage.join(out, "tokenizer", "tokenizer.json"), info, opts)
    return tokenizer, info


def _local_copy(path: str, opts: dict[str, Any]) -> Path:
    if not storage.is_remote(path):
        return Path(path)
    tmp = Path(tempfile.mkdtemp(prefix="sieve-tok-"))
    for name in ("vocab.json", "merges.txt"):
        fs, p = storage.fs_and_path(storage.join(path, name), opts)
        (tmp / name).write_bytes(fs.cat_file(p))
    return tmp


def encode_file(path: str, part_path: str, tokenizer: Tokenizer, eot_id: int, seed: int,
                opts: dict[str, Any]) -> dict[str, int]:
    """Encode one curated file into a part: ids + end-of-text per document, and its shard bucket."""
    dtype = token_dtype(len(tokenizer.vocab))
    columns: dict[str, list] = {"input_ids": [], "num_tokens": [], "doc_id": [], "url": [], "source": [], "bucket": []}
    for batch in storage.iter_parquet_batches(path, columns=["doc_id", "url", "warc_file", "text"], storage_options=opts):
        for doc_id, url, source, text in zip(*(batch.column(i).to_pylist() for i in range(4))):
            ids = tokenizer.encode_fast(text)
            ids.append(eot_id)
            columns["input_ids"].append(np.asarray(ids, dtype=dtype.to_pandas_dtype()))
            columns["num_tokens"].append(len(ids))
            columns["doc_id"].append(doc_id)
            columns["url"].append(url)
            columns["source"].append(source)
            columns["bucket"].append(doc_bucket(doc_id, seed))
    schema = pa.schema([("input_ids", pa.list_(dtype)), ("num_tokens", pa.int32()), ("doc_id", pa.string()),
                        ("url", pa.string()), ("source", pa.string()), ("bucket", pa.uint64())])
    storage.write_parquet(pa.table(columns, schema=schema), part_path, opts)
    return {"docs": len(columns["doc_id"]), "tokens": int(sum(columns["num_tokens"]))}


def run_tokenize(cfg: SieveConfig, out: str, curated_files: list[str]) -> dict[str, Any]:
    """Tokenizer + token shards for the curated documents; returns the manifest."""
    opts = cfg.input.storage_options
    manifest_path = storage.join(out, "tokens", "manifest.json")
    if storage.exists(manifest_path, opts):
        stored = storage.read_json(manifest_path, opts)
        if stored.get("config_hash") == cfg.hash():
            return stored
    from pipeline.run import init_ray

    started = time.time()
    tokenizer, info = prepare_tokenizer(cfg, out, curated_files)
    eot_id = tokenizer.special_ids[_eot_token(cfg.tokenizer.special_tokens)]
    ray = init_ray(cfg)
    tokenizer_ref = ray.put(tokenizer)
    encode = ray.remote(encode_file)
    parts = [storage.join(out, "tokens", ".parts", path.rsplit("/", 1)[-1]) for path in curated_files]
    counts = ray.get([encode.remote(path, part, tokenizer_ref, eot_id, cfg.shards.seed, opts)
                      for path, part in zip(curated_files, parts)])
    total_tokens = sum(c["tokens"] for c in counts)
    num_shards = max(1, math.ceil(total_tokens / cfg.shards.target_tokens))
    write = ray.remote(write_shard)
    shards = ray.get([write.remote(parts, k, num_shards, cfg.shards.seed, len(tokenizer.vocab),
                                   storage.join(out, "tokens", shard_name(k)), opts) for k in range(num_shards)])
    storage.remove_tree(storage.join(out, "tokens", ".parts"), opts)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "config_hash": cfg.hash(),
        "tokenizer_sha256": info["sha256"],
        "tokenizer_dir": "../tokenizer",
        "vocab_size": len(tokenizer.vocab),
        "special_tokens": tokenizer.special_ids,
        "eot_id": eot_id,
        "dtype": str(token_dtype(len(tokenizer.vocab))),
        "seed": cfg.shards.seed,
        "shards": shards,
        "total_docs": sum(s["docs"] for s in shards),
        "total_tokens": sum(s["tokens"] for s in shards),
        "tokenizer": info,
        "seconds": round(time.time() - started, 3),
    }
    storage.atomic_write_json(manifest_path, manifest, opts)
    return manifest
