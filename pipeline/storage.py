"""Output and input paths through fsspec (local, s3://, https://), with atomic writes.

Every output file is written to a temporary name beside its target and renamed into place, so a
killed task never leaves a half-written file under a final name (resume relies on that).
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import uuid
from typing import Any, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


def fs_and_path(path: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and its path for `path`. For remote stores the cached listing of the path is
    dropped first: other processes (Ray workers) write these files, and s3fs would otherwise
    answer from a stale listing, or refuse to read a file replaced since (FileExpired)."""
    fs, _, paths = fsspec.get_fs_token_paths(path, storage_options=storage_options or {})
    if is_remote(path):
        fs.invalidate_cache(paths[0])
    return fs, paths[0]


def join(base: str, *parts: str) -> str:
    if "://" in base:
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def exists(path: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, p = fs_and_path(path, storage_options)
    return fs.exists(p)


def makedirs(path: str, storage_options: dict[str, Any] | None = None) -> None:
    fs, p = fs_and_path(path, storage_options)
    fs.makedirs(p, exist_ok=True)


def listdir(path: str, suffix: str = "", storage_options: dict[str, Any] | None = None) -> list[str]:
    """Sorted full paths of the files directly in `path` ending with `suffix` ([] if missing)."""
    fs, p = fs_and_path(path, storage_options)
    if not fs.exists(p):
        return []
    names = sorted(fs.ls(p, detail=False))
    proto = path.split("://", 1)[0] + "://" if is_remote(path) else ""
    out = []
    for name in names:
        base = posixpath.basename(name.rstrip("/"))
        if base.endswith(suffix) and not base.startswith(".tmp-"):
            out.append(join(path, base) if proto else os.path.join(path, base))
    return out


def remove_tree(path: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete a directory tree (missing is fine). Local trees go through shutil: fsspec's local rm
    calls os.getcwd(), which fails in a Ray job whose working directory was already cleaned up."""
    if not is_remote(path):
        shutil.rmtree(path.removeprefix("file://"), ignore_errors=True)
        return
    fs, p = fs_and_path(path, storage_options)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def remove_file(path: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete one file (missing is fine)."""
    fs, p = fs_and_path(path, storage_options)
    if fs.exists(p):
        fs.rm_file(p)


def read_bytes(path: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, p = fs_and_path(path, storage_options)
    return fs.cat_file(p)


def atomic_write_bytes(path: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write `data` to `path` via a temporary sibling and a rename."""
    fs, p = fs_and_path(path, storage_options)
    parent = posixpath.dirname(p) if is_remote(path) else os.path.dirname(p)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = (posixpath if is_remote(path) else os.path).join(parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(p)}")
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    if is_remote(path):
        fs.mv(tmp, p)
    else:
        os.replace(tmp, p)


def atomic_write_json(path: str, obj: Any, storage_options: dict[str, Any] | None = None, *,
                      sort_keys: bool = True) -> None:
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n"
    atomic_write_bytes(path, text.encode(), storage_options)


def read_json(path: str, storage_options: dict[str, Any] | None = None) -> Any:
    fs, p = fs_and_path(path, storage_options)
    with fs.open(p, "rb") as fh:
        return json.loads(fh.read())


def write_parquet(table: pa.Table, path: str, storage_options: dict[str, Any] | None = None) -> None:
    """Write a zstd Parquet file atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=COMPRESSION)
    atomic_write_bytes(path, buf.getvalue(), storage_options)


def read_parquet(path: str, columns: list[str] | None = None,
                 storage_options: dict[str, Any] | None = None) -> pa.Table:
    fs, p = fs_and_path(path, storage_options)
    return pq.read_table(p, columns=columns, filesystem=fs)


def iter_parquet_batches(path: str, columns: list[str] | None = None, batch_size: int = 1024,
                         storage_options: dict[str, Any] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file in record batches (bounded memory)."""
    fs, p = fs_and_path(path, storage_options)
    with fs.open(p, "rb") as fh:
        yield from pq.ParquetFile(fh).iter_batches(batch_size=batch_size, columns=columns)


class AtomicFile:
    """A binary file written piece by piece to a temporary sibling; it appears under its final name
    only on commit(), so a killed writer never leaves a partial file under that name."""

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.fs, final = fs_and_path(path, storage_options)
        self._final = final
        parent = posixpath.dirname(final) if is_remote(path) else os.path.dirname(final)
        self.fs.makedirs(parent, exist_ok=True)
        self._tmp = (posixpath if is_remote(path) else os.path).join(
            parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(final)}")
        self.fh = self.fs.open(self._tmp, "wb")

    def write(self, data: bytes | memoryview) -> None:
        self.fh.write(data)

    def commit(self) -> None:
        self.fh.close()
        if is_remote(self.path):
            self.fs.mv(self._tmp, self._final)
        else:
            os.replace(self._tmp, self._final)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            if self.fs.exists(self._tmp):
                self.fs.rm(self._tmp)


class ParquetStreamWriter:
    """Append record batches to a Parquet file; it appears under its final name only on commit().

    Used by the per-WARC task so that a file's documents never have to sit in memory at once,
    while a killed task still leaves no partial file under the final name.
    """

    def __init__(self, path: str, schema: pa.Schema, storage_options: dict[str, Any] | None = None) -> None:
        self.path, self.schema = path, schema
        self._file = AtomicFile(path, storage_options)
        self._writer = pq.ParquetWriter(self._file.fh, schema, compression=COMPRESSION)
        self.rows = 0

    def write_rows(self, columns: dict[str, list[Any]]) -> None:
        if not columns or not next(iter(columns.values())):
            return
        batch = pa.RecordBatch.from_pydict(columns, schema=self.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.abort()
