"""Token shards: the Parquet files trainers read, their manifest, and `TokenShards`, the reader.

A shard is `tokens/shard-NNNNN.parquet` (zstd), one row per document: `input_ids`
(list<uint16> when the vocab fits, else list<uint32>, end-of-text id appended), `num_tokens`,
`doc_id`, `url`, `source`. Documents are assigned to shards by a seeded hash of their doc_id and
shuffled inside each shard with the same seed, so the layout does not depend on how the encoding
work was split. `tokens/manifest.json` describes everything a trainer needs.

`TokenShards` packs the documents of an epoch into windows of `seq_len + 1` tokens and yields
them as numpy arrays. Window k of the epoch goes to rank `k % world_size`; inside a rank, batch b
(of `batch_size` windows, the DataLoader's batch size) goes to worker `b % num_workers`, so the
batches the DataLoader interleaves round-robin are the rank's sample sequence for any number of
workers, and `state_dict()` resumes it mid-epoch.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from pipeline import storage

SCHEMA_VERSION = 1



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


def doc_bucket(doc_id: str, seed: int) -> int:
    """Seeded 64-bit hash of a doc id: picks its shard and its place inside the shard."""
    return xxhash.xxh3_64_intdigest(doc_id.encode(), seed=seed)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def write_shard(part_paths: list[str], index: int, num_shards: int, seed: int, vocab_size: int,
                out_path: str, opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect the documents of shard `index` from the encoded parts and write it, shuffled."""
    tables = []
    for path in part_paths:
        part = storage.read_parquet(path, storage_options=opts)
        bucket = part.column("bucket").to_numpy()
        mine = (bucket % np.uint64(num_shards)) == np.uint64(index)
        if mine.any():
            tables.append(part.filter(pa.array(mine)))
    schema = shard_schema(vocab_size)
    if tables:
        table = pa.concat_tables(tables)
        order = np.lexsort((np.array(table.column("doc_id").to_pylist(), dtype=object).astype(str),
                            table.column("bucket").to_numpy() // np.uint64(num_shards)))
        table = table.take(pa.array(order)).drop_columns(["bucket"]).cast(schema)
    else:
        table = schema.empty_table()
    storage.write_parquet(table, out_path, opts)
    return {"file": out_path.rsplit("/", 1)[-1], "docs": table.num_rows,
            "tokens": int(pa.compute.sum(table.column("num_tokens")).as_py() or 0)}


class PlainTokenShards:
    """Iterate packed training windows of `seq_len + 1` tokens from a `tokens/` directory.

    Import it as `TokenShards`: with PyTorch installed that name is a subclass that is also a
    `torch.utils.data.IterableDataset` (so DataLoader treats it as iterable-style). torch is only
    imported when that name is first used, never by the pipeline itself.
    """

    def __init__(self, path: str, seq_len: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1, num_workers: int | None = None, worker_id: int | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.path, self.seq_len, self.seed = path, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self.batch_size = batch_size  # the DataLoader's: each worker takes whole batches in turn
        self._num_workers, self._worker_id = num_workers, worker_id
        self.manifest = storage.read_json(storage.join(path, "manifest.json"))
        self.dtype = np.uint16 if self.manifest["dtype"] == "uint16" else np.uint32
        self.epoch = 0
        self.samples_seen = 0  # windows of this rank already consumed in this epoch

    # -- resumable state
    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """Where this rank is in the epoch. With DataLoader workers the dataset in the main process
        does not see their progress: pass the number of samples the trainer consumed."""
        seen = self.samples_seen if consumed is None else consumed
        return {"epoch": self.epoch, "samples_seen": seen, "seed": self.seed,
                "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (state["rank"], state["world_size"]) != (self.rank, self.world_size):
            raise ValueError("state was saved for another rank/world_size")
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

    def shard_order(self, epoch: int) -> list[str]:
        files = [s["file"] for s in self.manifest["shards"]]
        return [files[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(files))]

    def _token_stream(self, epoch: int) -> Iterator[np.ndarray]:
        for name in self.shard_order(epoch):
            fs, p = storage.fs_and_path(storage.join(self.path, name))
            with fs.open(p, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(columns=["input_ids"], batch_size=4096):
                    yield batch.column(0).flatten().to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)

    def windows(self, epoch: int) -> Iterator[tuple[int, np.ndarray]]:
        """(window index in the epoch, tokens) for every window of every rank, in order."""
        size, step = self.seq_len + 1, self.seq_len
        buf = np.zeros(0, dtype=self.dtype)
        index = 0
        for tokens in self._token_stream(epoch):
            buf = np.concatenate([buf, tokens])
            start = 0
            while start + size <= len(buf):
                yield index, buf[start: start + size]
                index += 1
                start += step
            buf = buf[start:]

    def __iter__(self) -> Iterator[np.ndarray]:
        worker_id, num_workers = self._worker()
        epoch, skip = self.epoch, self.samples_seen
        rank_sample = 0
        for index, window in self.windows(epoch):
            if index % self.world_size != self.rank:
                continue
            # Whole batches go to the workers in turn, counted from the resume point: the DataLoader
            # collects a batch per worker and starts its round-robin at worker 0.
            mine = rank_sample >= skip and ((rank_sample - skip) // self.batch_size) % num_workers == worker_id
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
