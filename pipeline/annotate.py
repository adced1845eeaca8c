"""The per-WARC task: read records, keep HTML responses, extract, annotate, decide, write.

This module holds no Ray code: `pipeline.run` wraps `process_warc` in a Ray task. One call reads
one input file as a stream and writes `documents/<stem>.parquet` (kept), `rejected/<stem>.parquet`
(removed, with reason), `logs/<stem>.jsonl` (every error with its byte offset, if any) and
finally `stats/<stem>.json`, the file's completion marker. Every
record it sees ends in exactly one bucket of `FileStats`.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from filters import DocFilter, Document
from filters.base import batch_caches
from filters.extract import extract
from pipeline import storage
from pipeline.config import SieveConfig
from pipeline.decide import build_filters, decide
from pipeline.logs import logged_input_task
from pipeline.stats import FileStats
from pipeline.warc import InputError, ReadError, iter_records, open_input

log = logging.getLogger("sieve.annotate")

BASE_FIELDS = [
    pa.field("doc_id", pa.string()),
    pa.field("url", pa.string()),
    pa.field("warc_file", pa.string()),
    pa.field("warc_record_id", pa.string()),
    pa.field("warc_date", pa.string()),
    pa.field("content_type", pa.string()),
    pa.field("text", pa.string()),
    pa.field("extract_fallback", pa.bool_()),  # no main content found: text is the whole visible text
]
REASON_FIELD = pa.field("reason", pa.string())
FLUSH_DOCS = 512
FLUSH_CHARS = 32_000_000
# Documents are annotated in batches, filter by filter (each model stays hot in the CPU caches;
# measured ~35-45 points less overhead over extraction than document by document): a batch closes
# at this many documents or characters, which bounds the texts held at once.
BATCH_DOCS = 64
BATCH_CHARS = 8_000_000


def document_schema(filters: list[DocFilter], *, rejected: bool = False) -> pa.Schema:
    fields = list(BASE_FIELDS)
    for doc_filter in filters:
        fields.extend(doc_filter.signal_schema())
    if rejected:
        fields.append(REASON_FIELD)
    return pa.schema(fields)


def make_doc_id(stem: str, record_id: str, offset: int) -> str:
    """Deterministic 16-hex id from the input's stem and the WARC record id (offset if none).

    The stem is part of the key because the same record can arrive in two inputs (mirrored or
    copied WARC files); their documents are then exact duplicates, which dedup removes.
    """
    key = f"{stem}|{record_id or offset}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class _Batch:
    """Column buffers flushed to a ParquetStreamWriter every few hundred documents."""

    def __init__(self, writer: storage.ParquetStreamWriter | None) -> None:
        self.writer = writer
        self.columns: dict[str, list[Any]] = {name: [] for name in writer.schema.names} if writer else {}
        self.docs = 0
        self.chars = 0

    def add(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for name, values in self.columns.items():
            values.append(row.get(name))
        self.docs += 1
        self.chars += len(row["text"])
        if self.docs >= FLUSH_DOCS or self.chars >= FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        if self.writer is not None and self.docs:
            self.writer.write_rows(self.columns)
            for values in self.columns.values():
                values.clear()
            self.docs = self.chars = 0


@logged_input_task
def process_warc(input_path: str, stem: str, cfg: SieveConfig, out: str) -> dict[str, Any]:
    """Run extraction + filters over one WARC; returns its stats (also written to stats/)."""
    started = time.perf_counter()
    stats = FileStats(input=input_path, stem=stem)
    filters = build_filters(cfg)
    opts = cfg.input.storage_options
    kept_writer = storage.ParquetStreamWriter(
        storage.join(out, "documents", f"{stem}.parquet"), document_schema(filters), opts)
    rejected_writer = None
    if cfg.output.keep_rejected:
        rejected_writer = storage.ParquetStreamWriter(
            storage.join(out, "rejected", f"{stem}.parquet"), document_schema(filters, rejected=True), opts)
    kept, rejected = _Batch(kept_writer), _Batch(rejected_writer)
    try:
        _annotate_records(input_path, stem, cfg, filters, stats, kept, rejected)
    except InputError as exc:
        stats.status = "failed"
        stats.add_error(exc.reason, message=str(exc))
        log.error("input %s failed: %s", input_path, exc)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a bug (or a Rust panic) must not lose the documents written
        stats.status = "failed"
        stats.add_error("task_error", message=f"{type(exc).__name__}: {exc}")
        log.exception("input %s: unexpected error", input_path)
    kept.flush()
    rejected.flush()
    kept_writer.commit()
    if rejected_writer is not None:
        rejected_writer.commit()
    stats.seconds = time.perf_counter() - started
    stats.check()
    result = stats.to_json()
    result["config_hash"] = cfg.hash()
    if stats.error_log:
        storage.atomic_write_bytes(storage.join(out, "logs", f"{stem}.jsonl"), stats.error_log_lines(), opts)
    storage.atomic_write_json(storage.join(out, "stats", f"{stem}.json"), result, opts)
    return result


def _annotate_records(input_path: str, stem: str, cfg: SieveConfig, filters: list[DocFilter], stats: FileStats,
                      kept: _Batch, rejected: _Batch) -> None:
    def open_stream(start: int = 0):
        return open_input(input_path, storage_options=cfg.input.storage_options, retries=cfg.input.retries,
                          backoff_s=cfg.input.retry_backoff_s, timeout_s=cfg.input.timeout_s, start=start)

    batch = _PendingDocs(input_path, stem, filters, stats, kept, rejected)
    try:
        _read_records(input_path, cfg, open_stream, stats, batch)
    finally:  # the documents extracted before an input error are still annotated and written
        batch.annotate()


def _read_records(input_path: str, cfg: SieveConfig, open_stream: Any, stats: FileStats,
                  batch: _PendingDocs) -> None:
    """Count every record of the input; extracted HTML documents go to `batch`."""
    html_types = set(cfg.extract.html_types)
    max_bytes = cfg.input.max_record_bytes
    for rec in iter_records(open_stream, max_record_bytes=max_bytes, name=input_path):
        if isinstance(rec, ReadError):
            stats.add_error("read_error", offset=rec.offset, message=rec.message)
            log.warning("%s: unreadable after offset %d: %s", input_path, rec.offset, rec.message,
                        extra={"offset": rec.offset, "reason": "read_error"})
            continue
        stats.record_types[rec.record_type] += 1
        if rec.record_type != "response":
            stats.add_removed(f"record:{rec.record_type}")
            continue
        if rec.http_status is None:
            stats.add_removed("not_http")
            continue
        if rec.http_status != 200:
            stats.add_removed(f"http_status:{rec.http_status}")
            continue
        stats.content_types[rec.content_type or "(none)"] += 1
        if rec.content_type not in html_types:
            stats.add_removed("not_html")
            continue
        if rec.content_length > max_bytes:
            stats.add_removed("too_large")
            continue
        try:
            payload = rec.read_payload(max_bytes + 1)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - damaged payloads (bad gzip, bad chunks), Rust panics
            stats.add_error("payload_error", offset=rec.offset, record_id=rec.record_id, message=str(exc))
            log.warning("%s @%d %s: payload unreadable: %s", input_path, rec.offset, rec.record_id, exc,
                        extra={"offset": rec.offset, "record_id": rec.record_id, "reason": "payload_error"})
            continue
        if len(payload) > max_bytes:
            stats.add_removed("too_large")
            continue
        if not payload.strip():
            stats.add_removed("empty_body")
            continue
        stats.payload_bytes += len(payload)
        try:
            extraction = extract(payload, main_content=cfg.extract.main_content, encoding=rec.charset,
                                 markdown=cfg.extract.markdown)
            text = extraction.text
        except Exception as exc:  # noqa: BLE001
            stats.add_error("extract_error", offset=rec.offset, record_id=rec.record_id, message=str(exc))
            continue
        if not text:
            stats.add_removed("extract:empty")
            continue
        if len(text) < cfg.extract.min_chars:
            stats.add_removed("extract:too_short")
            continue
        batch.add(_Pending(rec.record_id, rec.offset, rec.target_uri, rec.warc_date, rec.content_type, text,
                           extraction.fallback))


@dataclass
class _Pending:
    """An extracted document waiting for its batch (the record fields it keeps, not the record)."""

    record_id: str
    offset: int
    url: str
    warc_date: str
    content_type: str
    text: str
    extract_fallback: bool


class _PendingDocs:
    """Extracted documents of one input, annotated filter by filter once the batch is full, then
    decided and written in input order."""

    def __init__(self, input_path: str, stem: str, filters: list[DocFilter], stats: FileStats,
                 kept: _Batch, rejected: _Batch) -> None:
        self.input_path, self.stem, self.filters, self.stats = input_path, stem, filters, stats
        self.kept, self.rejected = kept, rejected
        self.pending: list[_Pending] = []
        self.chars = 0

    def add(self, item: _Pending) -> None:
        self.pending.append(item)
        self.chars += len(item.text)
        if len(self.pending) >= BATCH_DOCS or self.chars >= BATCH_CHARS:
            self.annotate()

    def annotate(self) -> None:
        """Annotate, decide and write the pending documents; a filter error drops only its document."""
        items, self.pending, self.chars = self.pending, [], 0
        docs = [Document(doc_id=make_doc_id(self.stem, p.record_id, p.offset), text=p.text, url=p.url) for p in items]
        self.stats.documents += len(docs)
        failed = [False] * len(docs)
        with batch_caches():
            for doc_filter in self.filters:
                for i, doc in enumerate(docs):
                    if not failed[i]:
                        failed[i] = self._annotate_one(doc_filter, doc, items[i])
        for item, doc, bad in zip(items, docs, failed):
            if not bad:
                self._decide_and_write(item, doc)

    def _annotate_one(self, doc_filter: DocFilter, doc: Document, item: _Pending) -> bool:
        """Run one filter on one document; True when it failed (counted as that filter's error)."""
        try:
            doc_filter.annotate(doc)
            return False
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop the file
            reason = f"filter_error:{doc_filter.name}"
            self.stats.add_error(reason, offset=item.offset, record_id=item.record_id,
                                 message=f"{type(exc).__name__}: {exc}")
            log.warning("%s @%d: filter %s failed: %s", self.input_path, item.offset, doc_filter.name, exc,
                        extra={"offset": item.offset, "record_id": item.record_id, "reason": reason})
            return True

    def _decide_and_write(self, item: _Pending, doc: Document) -> None:
        reason = decide(self.filters, doc.signals)
        row = {
            "doc_id": doc.doc_id, "url": doc.url, "warc_file": self.input_path, "warc_record_id": item.record_id,
            "warc_date": item.warc_date, "content_type": item.content_type, "text": doc.text,
            "extract_fallback": item.extract_fallback, **doc.signals,
        }
        if "language" in doc.signals:
            self.stats.languages[doc.signals["language"]] += 1
        self.stats.text_chars += len(doc.text)
        if reason is None:
            self.stats.add_kept()
            self.kept.add(row)
        else:
            self.stats.add_removed(reason)
            row["reason"] = reason
            self.rejected.add(row)
