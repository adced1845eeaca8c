"""Input readers: one small class per input format, each turning one input file into its items.

A reader yields, in input order, every item of the file as exactly one of

    Doc(...)            a document to annotate: an HTML payload to extract (WARC) or text (WET
                        conversion records, JSONL lines, Parquet rows), with its provenance
    Removed(reason)     an item that is not a document (a request record, a 404, no text field)
    ItemError(reason)   an item that could not be read (a damaged region, a line that is not JSON)

so that the per-input task (`pipeline.stages.annotate`) can keep its accounting: every input item ends
as kept, removed(reason) or error(reason), and the counts add up. Readers hold no Ray code and
no stats; `record_type` and `content_type` on an item feed the stats' histograms. Inputs are
streams (local, https, s3): a file is never loaded whole, Parquet is read a row group at a time.

    for item in reader_for(path, cfg.input, cfg.extract).read(path): ...

`input.format: auto` picks the reader from the file name (`format_of`).
"""
from __future__ import annotations

import gzip
import io
import json
import logging
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Iterator

from pipeline.config import ExtractSection, InputSection
from pipeline.inputs.warc import InputError, Prefixed, RawRecord, ReadError, iter_records, open_input, open_remote

log = logging.getLogger("sieve.readers")

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LINE_CHUNK = 1 << 20


@dataclass
class Item:
    """Where an input item is (byte offset, or row index for row-based inputs) and what it was.

    `record_type` is counted in the stats' record types, `content_type` in their content types
    ("" counts as "(none)"); None leaves the histogram alone."""

    offset: int
    record_id: str = ""
    record_type: str | None = None
    content_type: str | None = None


@dataclass
class Removed(Item):
    reason: str = ""


@dataclass
class ItemError(Item):
    reason: str = ""
    message: str = ""


@dataclass
class Doc(Item):
    """A document: `html` (bytes to extract, `charset` the server's hint) or `text` (used as is)."""

    url: str = ""
    date: str = ""
    html: bytes | None = None
    charset: str | None = None
    text: str | None = None


class NotParquetError(InputError):
    reason = "not_parquet"


class SchemaError(InputError):
    """A row-based input whose columns lack the configured text field."""

    reason = "bad_schema"


class Reader:
    """One input format: `read(path)` yields the file's items in order. It opens the input itself
    (local, https, s3) with the retry options of `input_cfg`; an input that cannot be opened at all
    raises InputError (the task counts it as the file's one error)."""

    name: ClassVar[str]

    def __init__(self, input_cfg: InputSection, extract_cfg: ExtractSection) -> None:
        self.input_cfg, self.extract_cfg = input_cfg, extract_cfg
        self.max_bytes = input_cfg.max_record_bytes

    def params(self) -> dict[str, Any]:
        """What this reader's items depend on beyond the file and the extraction settings."""
        return {"format": self.name}

    def read(self, path: str) -> Iterator[Item]:
        raise NotImplementedError

    def open_stream(self, path: str, start: int = 0) -> IO[bytes]:
        """The input as a forward-only byte stream from byte `start` (retrying, resumable)."""
        cfg = self.input_cfg
        return open_input(path, storage_options=cfg.storage_options, retries=cfg.retries,
                          backoff_s=cfg.retry_backoff_s, timeout_s=cfg.timeout_s, start=start)


class WarcReader(Reader):
    """WARC (and ARC through warcio): HTTP-200 responses of an HTML content type become documents
    with their payload; every other record is removed with a reason saying why."""

    name = "warc"
    document_record = "response"  # the record type that can hold a document

    def read(self, path: str) -> Iterator[Item]:
        for rec in iter_records(lambda start=0: self.open_stream(path, start), max_record_bytes=self.max_bytes,
                                name=path):
            if isinstance(rec, ReadError):  # an unreadable region of the file, counted once
                yield ItemError(rec.offset, reason="read_error", message=rec.message)
                continue
            where = {"offset": rec.offset, "record_type": rec.record_type}
            if rec.record_type != self.document_record:
                yield Removed(**where, reason=f"record:{rec.record_type}")
                continue
            yield from self._record_items(rec, where)

    def _record_items(self, rec: RawRecord, where: dict[str, Any]) -> Iterator[Item]:
        """The one item of a response record."""
        if rec.http_status is None:
            yield Removed(**where, reason="not_http")
            return
        if rec.http_status != 200:
            yield Removed(**where, reason=f"http_status:{rec.http_status}")
            return
        where["content_type"] = rec.content_type
        if rec.content_type not in self.extract_cfg.html_types:
            yield Removed(**where, reason="not_html")
            return
        payload = yield from self._payload(rec, where)
        if payload is None:
            return
        if not payload.strip():
            yield Removed(**where, reason="empty_body")
            return
        yield Doc(**where, record_id=rec.record_id, url=rec.target_uri, date=rec.warc_date,
                  html=payload, charset=rec.charset)

    def _payload(self, rec: RawRecord, where: dict[str, Any]) -> Iterator[Item]:
        """Generator returning the record's payload; None after yielding why there is none (over
        `input.max_record_bytes`, by its header or by what was read, or unreadable)."""
        if rec.content_length > self.max_bytes:
            yield Removed(**where, reason="too_large")
            return None
        try:
            payload = rec.read_payload(self.max_bytes + 1)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - damaged payloads (bad gzip, bad chunks), Rust panics
            yield ItemError(**where, record_id=rec.record_id, reason="payload_error", message=str(exc))
            return None
        if len(payload) > self.max_bytes:
            yield Removed(**where, reason="too_large")
            return None
        return payload


class WetReader(WarcReader):
    """Common Crawl WET files: each `conversion` record is a document of plain text (UTF-8, as CC
    writes it); the warcinfo and any other record are removed as record:<type>."""

    name = "wet"
    document_record = "conversion"

    def _record_items(self, rec: RawRecord, where: dict[str, Any]) -> Iterator[Item]:
        payload = yield from self._payload(rec, where)
        if payload is None:
            return
        text = payload.decode("utf-8", "replace")
        if not text.strip():
            yield Removed(**where, reason="no_text")
            return
        yield Doc(**where, record_id=rec.record_id, url=rec.target_uri, date=rec.warc_date, text=text)


class RowReader(Reader):
    """Inputs of one document per row (JSONL lines, Parquet rows): the text is in
    `input.text_field`, the id, URL and date in `input.id_field`, `url_field`, `date_field`
    (a dotted name reaches into nested objects: `metadata.url`). A row's offset is its index
    in the file; its doc id comes from the id field, or from the index when it has none."""

    def params(self) -> dict[str, Any]:
        cfg = self.input_cfg
        return {"format": self.name, "text_field": cfg.text_field, "id_field": cfg.id_field,
                "url_field": cfg.url_field, "date_field": cfg.date_field}

    def row_item(self, row: Any, index: int) -> Item:
        """The item of one parsed row: a document, removed(no_text) or error(bad_row)."""
        if not isinstance(row, dict):
            return ItemError(index, reason="bad_row", message=f"row {index} is a {type(row).__name__}, not an object")
        cfg = self.input_cfg
        text = _field(row, cfg.text_field)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text is not None and not isinstance(text, str):
            return ItemError(index, reason="bad_row", message=f"row {index}: input.text_field {cfg.text_field!r} "
                                                              f"is a {type(text).__name__}, not a string")
        record_id = _as_str(_field(row, cfg.id_field))
        if not text or not text.strip():
            return Removed(index, record_id=record_id, reason="no_text")
        return Doc(index, record_id=record_id, url=_as_str(_field(row, cfg.url_field)),
                   date=_as_str(_field(row, cfg.date_field)), text=_valid_utf8(text))


def _field(row: dict[str, Any], name: str) -> Any:
    """row[name], else the nested value a dotted name points to (None when absent)."""
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _as_str(value: Any) -> str:
    return "" if value is None else _valid_utf8(value if isinstance(value, str) else str(value))


def _valid_utf8(text: str) -> str:
    """`text` with lone surrogates (JSON can escape them; Parquet refuses them) replaced."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class JsonlReader(RowReader):
    """JSON Lines, plain, gzip or zstd (told by the first bytes, whatever the name). A line that is
    not a JSON object is error(bad_row); a line over `input.max_record_bytes` is removed(too_large)
    without being held; blank lines are no rows. A damaged compressed stream ends the file with
    one error(read_error) at the line it reached."""

    name = "jsonl"

    def read(self, path: str) -> Iterator[Item]:
        stream = self.open_stream(path)
        index = 0
        try:
            lines = _decompressed(stream)
            while line := lines.readline(self.max_bytes + 1):
                if len(line) > self.max_bytes and not line.endswith(b"\n"):
                    while (rest := lines.readline(LINE_CHUNK)) and not rest.endswith(b"\n"):
                        pass
                    yield Removed(index, reason="too_large")
                elif line.strip():
                    yield self._parsed(line, index)
                index += 1
        except InputError:
            raise
        except (OSError, EOFError, ValueError) as exc:  # bad gzip/zstd data, a cut stream
            yield ItemError(index, reason="read_error", message=f"{path}: line {index}: {type(exc).__name__}: {exc}")
        finally:
            stream.close()

    def _parsed(self, line: bytes, index: int) -> Item:
        try:
            row = json.loads(line.decode("utf-8", "replace"))
        except ValueError as exc:
            return ItemError(index, reason="bad_row", message=f"line {index} is not JSON: {exc}")
        return self.row_item(row, index)


def _decompressed(stream: IO[bytes]) -> IO[bytes]:
    """A line-readable stream of the content: gunzipped or un-zstd'ed when its magic says so."""
    head = stream.read(len(ZSTD_MAGIC))
    raw = io.BufferedReader(Prefixed(head, stream), LINE_CHUNK)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw)
    if head.startswith(ZSTD_MAGIC):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), LINE_CHUNK)
    return raw


class ParquetReader(RowReader):
    """Parquet files, one row group at a time (remote files by ranged reads). A row group that
    cannot be decoded is one error(read_error) at its first row; the rows after it still count.
    A file without the text column fails with error(bad_schema), one that is not Parquet with
    error(not_parquet)."""

    name = "parquet"

    def read(self, path: str) -> Iterator[Item]:
        import pyarrow.parquet as pq

        cfg = self.input_cfg
        fh = self._open_seekable(path)
        try:
            try:
                parquet = pq.ParquetFile(fh)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
                raise NotParquetError(f"{path}: not a Parquet file: {exc}") from exc
            names = parquet.schema_arrow.names
            if cfg.text_field.split(".")[0] not in names:
                raise SchemaError(f"{path}: no column {cfg.text_field!r} (input.text_field); columns: {names}")
            fields = (cfg.text_field, cfg.id_field, cfg.url_field, cfg.date_field)
            columns = list(dict.fromkeys(f if f in names else f.split(".")[0] for f in fields))
            columns = [c for c in columns if c in names]
            index = 0
            for group in range(parquet.num_row_groups):
                try:
                    table = parquet.read_row_group(group, columns=columns)
                except Exception as exc:  # noqa: BLE001 - a damaged row group
                    yield ItemError(index, reason="read_error",
                                    message=f"{path}: row group {group} (rows from {index}): {exc}")
                    index += parquet.metadata.row_group(group).num_rows
                    continue
                for batch in table.to_batches(max_chunksize=1024):
                    for row in batch.to_pylist():
                        yield self.row_item(row, index)
                        index += 1
        finally:
            fh.close()

    def _open_seekable(self, path: str) -> IO[bytes]:
        if "://" not in path or path.startswith("file://"):
            try:
                return open(path.removeprefix("file://"), "rb")
            except OSError as exc:
                raise InputError(f"{path}: cannot open: {exc}") from exc
        cfg = self.input_cfg
        return open_remote(path, cfg.storage_options, cfg.retries, cfg.retry_backoff_s)


READERS: dict[str, type[Reader]] = {r.name: r for r in (WarcReader, WetReader, JsonlReader, ParquetReader)}
SUFFIXES = {".wet": "wet", ".wet.gz": "wet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".jsonl.zst": "jsonl",
            ".parquet": "parquet"}


def format_of(path: str) -> str:
    """The input format a file name says: `.wet[.gz]`, `.jsonl[.gz|.zst]`, `.parquet`; anything
    else (`.warc[.gz]`, `.arc[.gz]`, ...) is read as WARC, whose reader tells WARC from ARC."""
    name = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return "warc"


def reader_for(path: str, input_cfg: InputSection, extract_cfg: ExtractSection) -> Reader:
    """The reader of `path`: `input.format`, or the format its name says when that is `auto`."""
    fmt = format_of(path) if input_cfg.format == "auto" else input_cfg.format
    return READERS[fmt](input_cfg, extract_cfg)
