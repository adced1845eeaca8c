"""Token writers (`shards.formats`): the flat train.bin / val.bin hold exactly the Parquet shards'
tokens in shard order, split by `val_fraction`, readable with np.memmap and by a nanoGPT-style
sampler; the Megatron-LM index is checked with a reader written here from the published MMIDIDX
layout; a rerun with other formats rewrites the token outputs."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import storage
from pipeline.config import ConfigError, parse_config
from pipeline.tokens.shards import doc_hash, part_schema, shard_name, write_part
from pipeline.tokens.writers import val_docs, write_tokens

EOT_ID = 999


def _parts(tmp_path: Path, n_docs: int, vocab: int, num_shards: int, seed: int = 5) -> list[str]:
    """Encoded parts as the encode task writes them: random documents, each ending with EOT."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if vocab <= 1 << 16 else np.uint32
    docs = [np.append(rng.integers(0, vocab, rng.integers(3, 90)), EOT_ID).astype(dtype) for _ in range(n_docs)]
    schema = part_schema(vocab)
    parts = []
    for p in range(2):
        mine = list(range(p, n_docs, 2))
        table = pa.table({"input_ids": [docs[i] for i in mine], "num_tokens": [len(docs[i]) for i in mine],
                          "doc_id": [f"d{i}" for i in mine], "url": [""] * len(mine), "source": ["s"] * len(mine),
                          "doc_hash": [doc_hash(f"d{i}", seed) for i in mine]},
                         schema=schema.remove(schema.get_field_index("shard")))
        path = str(tmp_path / ".parts" / f"{p}.parquet")
        write_part(table, num_shards, path)
        parts.append(path)
    return parts


def _write_all(tmp_path: Path, formats: list[str], n_docs: int = 300, vocab: int = 1000, num_shards: int = 3,
               val_fraction: float = 0.05) -> tuple[Path, dict, list[pa.Table]]:
    """Parquet shards one call each (as the stage's tasks do), the flat formats in one call."""
    tokens = tmp_path / "tokens"
    cfg = parse_config({"input": {"paths": ["x"]}, "shards": {"val_fraction": val_fraction,
                                                              "formats": ["parquet", *formats]}}).shards
    parts = _parts(tmp_path, n_docs, vocab, num_shards)
    for k in range(num_shards):
        write_tokens(["parquet"], parts, [k], str(tokens), vocab, n_docs, cfg)
    entries = write_tokens(formats, parts, range(num_shards), str(tokens), vocab, n_docs, cfg)
    shards = [pq.read_table(tokens / shard_name(k)) for k in range(num_shards)]
    return tokens, entries, shards


def _shard_docs(shards: list[pa.Table]) -> list[np.ndarray]:
    """Every document's ids in shard order, read with pyarrow alone."""
    return [np.asarray(ids) for table in shards for ids in table.column("input_ids").to_pylist()]


def test_val_docs():
    assert [val_docs(n, 0.0005) for n in (0, 1, 2, 1000, 10_000)] == [0, 0, 1, 1, 5]
    assert val_docs(10, 0.0) == 0 and val_docs(3, 0.9) == 2


@pytest.mark.parametrize("vocab", [1000, 70_000])
def test_bin_files_hold_the_parquet_tokens_in_shard_order(tmp_path, vocab):
    tokens, entries, shards = _write_all(tmp_path, ["bin"], vocab=vocab)
    entry = entries["bin"]
    dtype = "uint16" if vocab <= 65536 else "uint32"
    assert entry["dtype"] == dtype
    train = np.memmap(tokens / "train.bin", dtype=entry["dtype"], mode="r")
    val = np.memmap(tokens / "val.bin", dtype=entry["dtype"], mode="r")
    docs = _shard_docs(shards)
    n_val = val_docs(len(docs), 0.05)
    assert (entry["train"]["docs"], entry["val"]["docs"]) == (len(docs) - n_val, n_val) == (285, 15)
    assert np.array_equal(train, np.concatenate(docs[:-n_val]))
    assert np.array_equal(val, np.concatenate(docs[-n_val:]))
    assert (entry["train"]["tokens"], entry["val"]["tokens"]) == (len(train), len(val))
    assert sum(t.num_rows for t in shards) == 300 and sum(len(d) for d in docs) == len(train) + len(val)
    assert (train == EOT_ID).sum() + (val == EOT_ID).sum() >= 300 and val[-1] == train[-1] == EOT_ID


def test_one_document_has_no_val_file(tmp_path):
    tokens, entries, shards = _write_all(tmp_path, ["bin"], n_docs=1, num_shards=1)
    assert entries["bin"]["val"] == {"file": None, "docs": 0, "tokens": 0}
    assert not (tokens / "val.bin").exists()
    assert np.array_equal(np.memmap(tokens / "train.bin", dtype="uint16", mode="r"), _shard_docs(shards)[0])


def get_batch(data: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator):
    """nanoGPT's sampler: random offsets, x = data[i:i+T], y = data[i+1:i+1+T]."""
    ix = rng.integers(0, len(data) - block_size, batch_size)
    x = np.stack([data[i:i + block_size].astype(np.int64) for i in ix])
    y = np.stack([data[i + 1:i + 1 + block_size].astype(np.int64) for i in ix])
    return x, y


def test_train_bin_feeds_a_nanogpt_sampler(tmp_path):
    tokens, entries, _ = _write_all(tmp_path, ["bin"])
    data = np.memmap(tokens / "train.bin", dtype=entries["bin"]["dtype"], mode="r")
    x, y = get_batch(data, block_size=32, batch_size=8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (8, 32) and x.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    assert x.max() < 1000 and x.min() >= 0


def read_megatron_index(path: Path) -> dict:
    """MMIDIDX v1, from its published description: magic, version, dtype code, counts, then the
    sequence lengths (int32), sequence byte pointers (int64) and document indices (int64)."""
    raw = path.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", raw, 9)
    at = 9 + 8 + 1 + 8 + 8
    lengths = np.frombuffer(raw, "<i4", n_seq, at)
    pointers = np.frombuffer(raw, "<i8", n_seq, at + 4 * n_seq)
    doc_idx = np.frombuffer(raw, "<i8", n_doc, at + 12 * n_seq)
    assert at + 12 * n_seq + 8 * n_doc == len(raw)
    return {"version": version, "code": code, "lengths": lengths, "pointers": pointers, "doc_idx": doc_idx}


def test_megatron_index_read_independently(tmp_path):
    tokens, entries, shards = _write_all(tmp_path, ["megatron"])
    docs = _shard_docs(shards)
    n_val = entries["megatron"]["val"]["docs"]
    for split, split_docs in (("train", docs[:-n_val]), ("val", docs[-n_val:])):
        index = read_megatron_index(tokens / f"{split}.idx")
        assert index["version"] == 1 and index["code"] == 8  # Megatron-LM's code for uint16
        assert list(index["lengths"]) == [len(d) for d in split_docs]
        assert list(index["doc_idx"]) == list(range(len(split_docs) + 1))
        data = np.memmap(tokens / f"{split}.bin", dtype=np.uint16, mode="r")
        for pointer, length, doc in zip(index["pointers"], index["lengths"], split_docs):
            assert np.array_equal(data[pointer // 2: pointer // 2 + length], doc)
        assert entries["megatron"][split]["idx"] == f"{split}.idx"


def test_formats_config():
    base = {"input": {"paths": ["x"]}}
    assert parse_config(base).shards.formats == ["parquet"]
    assert parse_config(base).shards.val_fraction == 0.0005
    for bad in (["bin"], ["parquet", "bin", "bin"], ["parquet", "npy"]):
        with pytest.raises(ConfigError, match="shards.formats"):
            parse_config({**base, "shards": {"formats": bad}})


# ------------------------------------------------------------------ the tokenize stage on Ray

def _curated(out: Path) -> list[str]:
    rng = np.random.default_rng(1)
    words = ["river", "mill", "town", "market", "winter", "letter", "garden", "harvest", "road", "bridge"]
    rows = [{"doc_id": f"c{i}", "url": "", "warc_file": "w", "text": " ".join(rng.choice(words, 40))}
            for i in range(80)]
    path = str(out / "curated" / "a.parquet")
    storage.write_parquet(pa.Table.from_pylist(rows), path)
    return [path]


@pytest.mark.slow
def test_stage_writes_and_rewrites_formats(ray_session, tmp_path):
    from pipeline.stages.encode import run_tokenize

    files = _curated(tmp_path)

    def run(formats):
        cfg = parse_config({"input": {"paths": ["unused"]}, "output": {"path": str(tmp_path)},
                            "tokenizer": {"vocab_size": 300}, "shards": {"target_tokens": 800, "formats": formats}})
        return run_tokenize(cfg, str(tmp_path), files)

    tokens = tmp_path / "tokens"
    manifest = run(["parquet", "bin", "megatron"])
    assert manifest["formats"] == ["parquet", "bin", "megatron"] and len(manifest["shards"]) > 1
    assert manifest["bin"]["train"]["tokens"] + manifest["bin"]["val"]["tokens"] == manifest["total_tokens"]
    assert manifest["bin"]["val"]["docs"] == 1  # 80 documents x 0.0005, at least one
    shards = [pq.read_table(tokens / s["file"]) for s in manifest["shards"]]
    flat = np.concatenate([np.memmap(tokens / f"{s}.bin", dtype=manifest["dtype"], mode="r") for s in ("train", "val")])
    assert np.array_equal(flat, np.concatenate(_shard_docs(shards)))
    assert read_megatron_index(tokens / "train.idx")["lengths"].sum() == manifest["bin"]["train"]["tokens"]
    assert json.loads((tokens / "manifest.json").read_text())["bin"] == manifest["bin"]

    fingerprint = manifest["fingerprint"]
    manifest = run(["parquet"])  # another format: the token outputs are redone
    assert manifest["fingerprint"] != fingerprint and "bin" not in manifest
    assert not (tokens / "train.bin").exists() and not (tokens / "train.idx").exists()
    manifest = run(["parquet", "bin"])
    assert (tokens / "train.bin").exists() and not (tokens / "train.idx").exists()
    assert run(["parquet", "bin"])["fingerprint"] == manifest["fingerprint"]  # unchanged: reused
