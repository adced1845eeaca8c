"""Token shards: the Parquet files trainers read, their manifest, and `TokenShards`, the reader.

A shard is `tokens/shard-NNNNN.parquet` (zstd), one row per document: `input_ids`
(list<uint16> when the vocab fits, else list<uint32>; the document's text encoded as ordinary
text, then the end-of-text id: the row's only special id, even when the page's text contains
`<|endoftext|>` or another special-token string), `num_tokens`,
`doc_id`, `url`, `source`. Each document gets a seeded 64-bit hash of its doc_id; the hash space
is cut into `num_shards` equal ranges (one per shard) and each shard is sorted by hash, so the
documents are shuffled across and inside shards, and the layout does not depend on how the
encoding work was split. Encoded parts keep one row group per shard, so writing shard k reads
only shard k's rows. `tokens/manifest.json` describes everything a trainer needs.

`TokenShards` packs the documents of an epoch into windows of `seq_len + 1` tokens and yields
them as numpy arrays. Window k of the epoch goes to rank `k % world_size`; inside a rank, batch b
(of `batch_size` windows, the DataLoader's batch size) goes to worker `b % num_workers`, so the
batches the DataLoader interleaves round-robin are the rank's sample sequence for any number of
workers, and `state_dict()` resumes it mid-epoch.
"""
from __future__ import annotations

import io
import sys
from functools import lru_cache
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipeline import storage

SCHEMA_VERSION = 1
_HASH_SPACE = 1 << 64


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 1 << 16 else pa.uint32()


def shard_schema(vocab_size: int) -> pa.Schema:
    return pa.schema([
        pa.field("input_ids", pa.list_(token_dtype(vocab_size))),
        pa.field("num_tokens", pa.int32()),
        pa.field("doc_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
    ])


def part_schema(vocab_size: int) -> pa.Schema:
    """An encoded curated file: the shard columns plus each document's hash and shard."""
    return shard_schema(vocab_size).append(pa.field("doc_hash", pa.uint64())).append(pa.field("shard", pa.int32()))


def doc_hash(doc_id: str, seed: int) -> int:
    """Seeded 64-bit hash of a doc id: picks its shard and its place inside the shard."""
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass"), seed=seed)


def shard_of(hashes: np.ndarray, num_shards: int) -> np.ndarray:
    """Shard index of each hash: shard k holds the k-th of num_shards equal hash ranges."""
    starts = np.array([k * _HASH_SPACE // num_shards for k in range(num_shards)], dtype=np.uint64)
    return (np.searchsorted(starts, hashes, side="right") - 1).astype(np.int32)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def _in_hash_order(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, sort_keys=[("doc_hash", "ascending"), ("doc_id", "ascending")]))


def write_part(table: pa.Table, num_shards: int, path: str, opts: dict[str, Any] | None = None) -> None:
    """Write encoded documents (part_schema without `shard`) sorted by hash, one row group per shard."""
    table = _in_hash_order(table)
    shards = shard_of(table.column("doc_hash").to_numpy(), num_shards)
    table = table.append_column("shard", pa.array(shards, pa.int32()))
    starts = np.searchsorted(shards, np.arange(num_shards + 1))
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema, compression=storage.COMPRESSION) as writer:
        for k in np.flatnonzero(np.diff(starts)):
            writer.write_table(table.slice(starts[k], starts[k + 1] - starts[k]))
        if table.num_rows == 0:
            writer.write_table(table)
    storage.atomic_write_bytes(path, buf.getvalue(), opts)


def shard_table(part_paths: list[str], index: int, vocab_size: int, opts: dict[str, Any] | None = None) -> pa.Table:
    """Shard `index`'s rows from the encoded parts (their row groups of that shard only), in hash order."""
    tables = []
    for path in part_paths:
        fs, p = storage.fs_and_path(path, opts)
        tables.append(pq.read_table(p, filesystem=fs, filters=[("shard", "=", index)]))
    table = pa.concat_tables(tables) if tables else part_schema(vocab_size).empty_table()
    return _in_hash_order(table).select(shard_schema(vocab_size).names).cast(shard_schema(vocab_size))


def write_shard_table(table: pa.Table, out_path: str, opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one shard's rows; returns its manifest entry."""
    storage.write_parquet(table, out_path, opts)
    return {"file": out_path.rsplit("/", 1)[-1], "docs": table.num_rows,
            "tokens": int(pc.sum(table.column("num_tokens")).as_py() or 0)}


def write_shard(part_paths: list[str], index: int, vocab_size: int, out_path: str,
                opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect shard `index`'s rows from the encoded parts, write it in hash order."""
    return write_shard_table(shard_table(part_paths, index, vocab_size, opts), out_path, opts)


def shard_manifest(shards: list[dict[str, Any]], vocab_size: int, special_tokens: dict[str, int], eot_id: int,
                   seed: int, **extra: Any) -> dict[str, Any]:
    """tokens/manifest.json: what a trainer needs to read the shards (plus `extra` provenance)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "vocab_size": vocab_size,
        "dtype": str(token_dtype(vocab_size)),
        "special_tokens": special_tokens,
        "eot_id": eot_id,
        "seed": seed,
        "shards": shards,
        "total_docs": sum(s["docs"] for s in shards),
        "total_tokens": sum(s["tokens"] for s in shards),
        **extra,
    }


class PlainTokenShards:
    """Iterate packed training windows of `seq_len + 1` tokens from a `tokens/` directory.

    Import it as `TokenShards`: with PyTorch installed that name is a subclass that is also a
    `torch.utils.data.IterableDataset` (so DataLoader treats it as iterable-style). torch is only
    imported when that name is first used, never by the pipeline itself.
    """

    def __init__(self, path: str, seq_len: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1, num_workers: int | None = None, worker_id: int | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        self.path, self.seq_len, self.seed = path, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self.batch_size = batch_size  # the DataLoader's: each worker takes whole batches in turn
        self._num_workers, self._worker_id = num_workers, worker_id
        self.storage_options = storage_options
        self.manifest = storage.read_json(storage.join(path, "manifest.json"), storage_options)
        self.dtype = np.uint16 if self.manifest["dtype"] == "uint16" else np.uint32
        self.epoch = 0
        self.samples_seen = 0  # windows of this rank already consumed in this epoch

    # -- resumable state
    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """Where this rank is in the epoch. With DataLoader workers the dataset in the main process
        does not see their progress: pass the number of samples the trainer consumed."""
        seen = self.samples_seen if consumed is None else consumed
        return {"epoch": self.epoch, "samples_seen": seen, "seed": self.seed, "seq_len": self.seq_len,
                "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        saved = (state["rank"], state["world_size"], state.get("seq_len", self.seq_len))
        if saved != (self.rank, self.world_size, self.seq_len):
            raise ValueError(f"state was saved for rank/world_size/seq_len {saved}, "
                             f"this reader is {(self.rank, self.world_size, self.seq_len)}")
        self.epoch, self.samples_seen, self.seed = state["epoch"], state["samples_seen"], state["seed"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.samples_seen = epoch, 0

    # -- iteration
    def _worker(self) -> tuple[int, int]:
        if self._num_workers is not None:
            return self._worker_id or 0, self._num_workers
        torch = sys.modules.get("torch")  # no torch imported: not inside a DataLoader worker
        info = torch.utils.data.get_worker_info() if torch is not None else None
        return (info.id, info.num_workers) if info else (0, 1)

    def shard_order(self, epoch: int) -> list[dict[str, Any]]:
        """The manifest's shard entries in this epoch's (seeded) order."""
        shards = self.manifest["shards"]
        return [shards[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(shards))]

    def _token_stream(self, epoch: int, skip_tokens: int) -> Iterator[np.ndarray]:
        """The epoch's tokens in order, from token `skip_tokens` on (whole shards skipped unread)."""
        for shard in self.shard_order(epoch):
            if skip_tokens >= shard["tokens"]:
                skip_tokens -= shard["tokens"]
                continue
            fs, p = storage.fs_and_path(storage.join(self.path, shard["file"]), self.storage_options)
            with fs.open(p, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(columns=["input_ids"], batch_size=4096):
                    tokens = batch.column(0).flatten().to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)
                    if skip_tokens >= len(tokens):
                        skip_tokens -= len(tokens)
                        continue
                    yield tokens[skip_tokens:]
                    skip_tokens = 0

    def windows(self, epoch: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(window index in the epoch, tokens) for every window of every rank from window `start`:
        window k is tokens [k * seq_len, k * seq_len + seq_len + 1) of the epoch's token stream."""
        size, step = self.seq_len + 1, self.seq_len
        buf = np.zeros(0, dtype=self.dtype)
        index = start
        for tokens in self._token_stream(epoch, start * step):
            buf = np.concatenate([buf, tokens])
            offset = 0
            while offset + size <= len(buf):
                yield index, buf[offset: offset + size]
                index += 1
                offset += step
            buf = buf[offset:]

    def __iter__(self) -> Iterator[np.ndarray]:
        worker_id, num_workers = self._worker()
        epoch, skip = self.epoch, self.samples_seen
        rank_sample = skip
        for index, window in self.windows(epoch, start=skip * self.world_size):
            if index % self.world_size != self.rank:
                continue
            # Whole batches go to the workers in turn, counted from the resume point: the DataLoader
            # collects a batch per worker and starts its round-robin at worker 0.
            mine = ((rank_sample - skip) // self.batch_size) % num_workers == worker_id
            rank_sample += 1
            if mine:
                if num_workers == 1:
                    self.samples_seen = rank_sample
                yield window.astype(np.int64)
        if num_workers == 1:  # a finished pass moves on: the next iteration is the next epoch
            self.set_epoch(epoch + 1)

    def __len__(self) -> int:
        """Windows this rank sees in one epoch."""
        total = max(0, (self.manifest["total_tokens"] - 1) // self.seq_len)
        return total // self.world_size + (1 if self.rank < total % self.world_size else 0)


@lru_cache(maxsize=1)
def _token_shards_class() -> type:
    try:
        from torch.utils.data import IterableDataset
    except ImportError:
        return PlainTokenShards
    return type("TokenShards", (PlainTokenShards, IterableDataset), {"__module__": __name__})


def __getattr__(name: str) -> Any:
    """`TokenShards`, resolved on first use (PEP 562) so that importing this module never imports torch."""
    if name == "TokenShards":
        return _token_shards_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
