"""Token writers: one small class per output format of the tokenize stage (`shards.formats`).

Every writer is fed the encoded documents shard by shard, in shard order (`add_shard`), and
returns its manifest entry from `close()`; it holds no Ray code (the stage runs one task per
Parquet shard and one task for the flat formats, all from the same encoded parts).

    parquet   tokens/shard-NNNNN.parquet: one row per document (`pipeline.tokens.shards`)
    bin       tokens/train.bin, tokens/val.bin: every document's ids (each ending with the
              end-of-text id) back to back, a flat array of the manifest's dtype, in shard
              order; the last `val_docs()` documents in that order go to val.bin (not written
              when it gets none). Read with np.memmap(path, dtype=manifest["dtype"], mode="r").
    megatron  the bin files plus a Megatron-LM indexed-dataset index beside each
              (tokens/train.idx, tokens/val.idx; data prefixes tokens/train and tokens/val):
              one sequence per document.

The Megatron index (MMIDIDX, version 1), little-endian: the 9-byte magic, the version (u64),
the token dtype's code (u8), the number of sequences (u64) and of document indices (u64), then
each sequence's length (int32), its byte offset in the .bin (int64) and the document indices
(int64: 0, then after each document the number of sequences so far).
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.config import ShardsSection
from pipeline.tokens.shards import shard_name, shard_table, token_dtype, write_shard_table

SPLITS = ("train", "val")
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
# Megatron-LM's dtype codes. It has no uint32: ids of a vocab over 65536 are below 2^31, so their
# uint32 bytes read as the same int32 values.
MEGATRON_DTYPE_CODES = {"uint16": 8, "uint32": 4}


def val_docs(total_docs: int, fraction: float) -> int:
    """Documents in val: `fraction` of them, at least one when there are two or more (and the
    fraction is above 0), never all of them."""
    if fraction <= 0 or total_docs < 2:
        return 0
    return min(total_docs - 1, max(1, round(total_docs * fraction)))


class TokenWriter:
    """One token output format; `add_shard(index, table)` in shard order, then `close()`."""

    name: ClassVar[str]

    def __init__(self, tokens_dir: str, vocab_size: int, total_docs: int, cfg: ShardsSection,
                 opts: dict[str, Any] | None = None) -> None:
        self.tokens_dir, self.vocab_size, self.total_docs, self.cfg, self.opts = tokens_dir, vocab_size, total_docs, cfg, opts

    def add_shard(self, index: int, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> Any:
        """Finish the files; returns the manifest entry."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was written (temporary files)."""


class ParquetShardWriter(TokenWriter):
    name = "parquet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shards: list[dict[str, Any]] = []

    def add_shard(self, index: int, table: pa.Table) -> None:
        self.shards.append(write_shard_table(table, storage.join(self.tokens_dir, shard_name(index)), self.opts))

    def close(self) -> list[dict[str, Any]]:
        return self.shards


class BinWriter(TokenWriter):
    """tokens/train.bin and tokens/val.bin (see the module docstring)."""

    name = "bin"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dtype = token_dtype(self.vocab_size).to_pandas_dtype()
        self.train_docs = self.total_docs - val_docs(self.total_docs, self.cfg.val_fraction)
        self.files = {split: storage.AtomicFile(storage.join(self.tokens_dir, f"{split}.bin"), self.opts)
                      for split in SPLITS}
        self.lengths: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
        self.docs_seen = 0

    def add_shard(self, index: int, table: pa.Table) -> None:
        ids = pc.list_flatten(table.column("input_ids")).to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)
        lengths = table.column("num_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
        cut = min(max(self.train_docs - self.docs_seen, 0), len(lengths))  # this shard's first val document
        token_cut = int(lengths[:cut].sum())
        for split, tokens, doc_lengths in (("train", ids[:token_cut], lengths[:cut]),
                                           ("val", ids[token_cut:], lengths[cut:])):
            if len(doc_lengths):
                self.files[split].write(np.ascontiguousarray(tokens).data)
                self.lengths[split].append(doc_lengths)
        self.docs_seen += len(lengths)

    def split_lengths(self, split: str) -> np.ndarray:
        return np.concatenate(self.lengths[split]) if self.lengths[split] else np.zeros(0, dtype=np.int64)

    def close(self) -> dict[str, Any]:
        if self.docs_seen != self.total_docs:
            raise AssertionError(f"{self.name} writer: {self.docs_seen} documents written, {self.total_docs} encoded")
        entry: dict[str, Any] = {"dtype": str(token_dtype(self.vocab_size))}
        for split, atomic in self.files.items():
            lengths = self.split_lengths(split)
            if len(lengths):
                atomic.commit()
            else:  # np.memmap cannot map an empty file: a split without documents has none
                atomic.abort()
            entry[split] = {"file": f"{split}.bin" if len(lengths) else None, "docs": len(lengths),
                            "tokens": int(lengths.sum())}
        return entry

    def abort(self) -> None:
        for atomic in self.files.values():
            atomic.abort()


class MegatronWriter(BinWriter):
    """The bin files plus a Megatron-LM `.idx` beside each (see the module docstring)."""

    name = "megatron"

    def close(self) -> dict[str, Any]:
        entry = super().close()
        dtype = str(token_dtype(self.vocab_size))
        itemsize = np.dtype(self.dtype).itemsize
        for split in SPLITS:
            lengths = self.split_lengths(split)
            if not len(lengths):
                continue
            pointers = np.concatenate([[0], np.cumsum(lengths[:-1] * itemsize)]).astype(np.int64)
            doc_indices = np.arange(len(lengths) + 1, dtype=np.int64)
            header = MEGATRON_MAGIC + struct.pack("<QBQQ", MEGATRON_VERSION, MEGATRON_DTYPE_CODES[dtype],
                                                  len(lengths), len(doc_indices))
            index = header + lengths.astype("<i4").tobytes() + pointers.astype("<i8").tobytes() \
                + doc_indices.astype("<i8").tobytes()
            storage.atomic_write_bytes(storage.join(self.tokens_dir, f"{split}.idx"), index, self.opts)
            entry[split].update(idx=f"{split}.idx", prefix=split)
        return entry


WRITERS: dict[str, type[TokenWriter]] = {w.name: w for w in (ParquetShardWriter, BinWriter, MegatronWriter)}


def flat_formats(formats: list[str]) -> list[str]:
    """The formats written by one sequential task (all but parquet); megatron writes the bin files
    itself, so bin is not written twice when both are asked for."""
    flat = [f for f in formats if f != "parquet"]
    return [f for f in flat if not (f == "bin" and "megatron" in flat)]


def write_tokens(formats: list[str], part_paths: list[str], shard_indices: Iterable[int], tokens_dir: str,
                 vocab_size: int, total_docs: int, cfg: ShardsSection,
                 opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Feed the shards `shard_indices` (in that order), read from the encoded parts, to one writer
    per format; returns each format's manifest entry. A failure leaves no file under a final name."""
    writers = [WRITERS[name](tokens_dir, vocab_size, total_docs, cfg, opts) for name in formats]
    try:
        for index in shard_indices:
            table = shard_table(part_paths, index, vocab_size, opts)
            for writer in writers:
                writer.add_shard(index, table)
        return {writer.name: writer.close() for writer in writers}
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
