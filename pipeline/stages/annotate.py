"""The per-input task: read items, extract HTML documents, annotate, decide, write.

This module holds no Ray code: `pipeline.run` wraps `process_warc` in a Ray task. One call reads
one input file (WARC, WET, JSONL or Parquet, through its `pipeline.inputs.readers` reader) as a stream
and writes `documents/<stem>.parquet` (kept), `rejected/<stem>.parquet`
(removed, with reason), `logs/<stem>.jsonl` (every error with its byte offset, if any) and
finally `stats/<stem>.json`, the file's completion marker. Every
item it reads ends in exactly one bucket of `FileStats`.
"""
from __future__ import annotations

import hashlib
import json
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
from pipeline.inputs.readers import Doc, ItemError, Removed, reader_for
from pipeline.inputs.warc import InputError
from pipeline.report.logs import logged_input_task
from pipeline.report.stats import FileStats
from pipeline.stages.decide import build_filters, decide
from pipeline.stages.fingerprint import decide_fingerprint, input_identity, provenance, signals_fingerprint

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


PROVENANCE_KEY = b"sieve.signals"  # Parquet metadata: what computed each group of signals
ALL_SIGNALS_KEY = b"sieve.all_signals"  # Parquet metadata: "false" when removed documents skipped later filters


def document_schema(filters: list[DocFilter], *, rejected: bool = False, all_signals: bool = True) -> pa.Schema:
    """Base fields + every filter's signals (+ reason); the metadata names what computed them and
    whether every document has every signal (`annotate.all_signals`)."""
    fields = list(BASE_FIELDS)
    for doc_filter in filters:
        fields.extend(doc_filter.signal_schema())
    if rejected:
        fields.append(REASON_FIELD)
    metadata = {PROVENANCE_KEY: json.dumps(provenance(filters)).encode()}
    if not all_signals:
        metadata[ALL_SIGNALS_KEY] = b"false"
    return pa.schema(fields, metadata=metadata)


def stored_provenance(schema: pa.Schema) -> list[dict[str, Any]] | None:
    """The filters' provenance a documents file was written with (None: not recorded)."""
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def make_doc_id(stem: str, record_id: str, offset: int) -> str:
    """Deterministic 16-hex id from the input's stem and the item's id: the WARC record id, or a
    JSONL/Parquet row's id field; when it has none, its byte offset (WARC) or row index.

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
    identity = input_identity(input_path, opts, cfg.input.timeout_s)
    all_signals = cfg.annotate.all_signals
    kept_writer = storage.ParquetStreamWriter(
        storage.join(out, "documents", f"{stem}.parquet"), document_schema(filters, all_signals=all_signals), opts)
    rejected_writer = None
    if cfg.output.keep_rejected:
        rejected_writer = storage.ParquetStreamWriter(storage.join(out, "rejected", f"{stem}.parquet"),
                                                      document_schema(filters, rejected=True, all_signals=all_signals),
                                                      opts)
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
    filter_provenance = provenance(filters)
    signals = signals_fingerprint(cfg, filter_provenance, identity)
    result.update(config_hash=cfg.hash(), input_identity=identity, provenance=filter_provenance,
                  keep_rejected=cfg.output.keep_rejected, all_signals=all_signals,
                  fingerprints={"signals": signals, "decide": decide_fingerprint(cfg, filters, signals)})
    if stats.error_log:
        storage.atomic_write_bytes(storage.join(out, "logs", f"{stem}.jsonl"), stats.error_log_lines(), opts)
    storage.atomic_write_json(storage.join(out, "stats", f"{stem}.json"), result, opts)
    return result


def _annotate_records(input_path: str, stem: str, cfg: SieveConfig, filters: list[DocFilter], stats: FileStats,
                      kept: _Batch, rejected: _Batch) -> None:
    batch = _PendingDocs(input_path, stem, filters, cfg.annotate.all_signals, stats, kept, rejected)
    try:
        _read_records(input_path, cfg, stats, batch)
    finally:  # the documents extracted before an input error are still annotated and written
        batch.annotate()


def _read_records(input_path: str, cfg: SieveConfig, stats: FileStats, batch: _PendingDocs) -> None:
    """Count every item the input's reader yields; its documents go to `batch` (HTML ones once
    extracted, text ones as they are)."""
    for item in reader_for(input_path, cfg.input, cfg.extract).read(input_path):
        if item.record_type is not None:
            stats.record_types[item.record_type] += 1
        if item.content_type is not None:
            stats.content_types[item.content_type or "(none)"] += 1
        if isinstance(item, Removed):
            stats.add_removed(item.reason)
        elif isinstance(item, ItemError):
            stats.add_error(item.reason, offset=item.offset, record_id=item.record_id, message=item.message)
            log.warning("%s @%d %s: %s: %s", input_path, item.offset, item.record_id, item.reason, item.message,
                        extra={"offset": item.offset, "record_id": item.record_id, "reason": item.reason})
        elif isinstance(item, Doc):
            text, fallback = (item.text, False) if item.html is None else _extracted_text(item, cfg, stats)
            if text is not None:
                batch.add(_Pending(item.record_id, item.offset, item.url, item.date, item.content_type, text,
                                   fallback))


def _extracted_text(doc: Doc, cfg: SieveConfig, stats: FileStats) -> tuple[str | None, bool]:
    """The extraction step: (the main text of an HTML payload, whether it is the page's whole
    visible text for want of main content), text None once the document is counted as removed
    (extract:empty, extract:too_short) or error(extract_error)."""
    stats.payload_bytes += len(doc.html)
    try:
        extraction = extract(doc.html, main_content=cfg.extract.main_content, encoding=doc.charset,
                             markdown=cfg.extract.markdown)
    except Exception as exc:  # noqa: BLE001
        stats.add_error("extract_error", offset=doc.offset, record_id=doc.record_id, message=str(exc))
        return None, False
    text = extraction.text
    if not text:
        stats.add_removed("extract:empty")
        return None, False
    if len(text) < cfg.extract.min_chars:
        stats.add_removed("extract:too_short")
        return None, False
    return text, extraction.fallback


@dataclass
class _Pending:
    """A document waiting for its batch (the provenance fields it keeps and its text)."""

    record_id: str
    offset: int
    url: str
    warc_date: str
    content_type: str
    text: str
    extract_fallback: bool


class _PendingDocs:
    """Extracted documents of one input, annotated filter by filter once the batch is full, then
    written in input order.

    Early exit (unless `all_signals`): each filter decides right after annotating, and a document
    it removes skips the later filters (their signals stay null). The first failing filter names
    the reason either way, as `decide` gives it over all the signals.
    """

    def __init__(self, input_path: str, stem: str, filters: list[DocFilter], all_signals: bool, stats: FileStats,
                 kept: _Batch, rejected: _Batch) -> None:
        self.input_path, self.stem, self.filters, self.stats = input_path, stem, filters, stats
        self.all_signals = all_signals
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
        reasons: list[str | None] = [None] * len(docs)
        with batch_caches():
            for doc_filter in self.filters:
                for i, doc in enumerate(docs):
                    if failed[i] or reasons[i] is not None:
                        continue
                    failed[i] = self._annotate_one(doc_filter, doc, items[i])
                    if not failed[i] and not self.all_signals:
                        reasons[i] = doc_filter.decide(doc.signals)
        for item, doc, bad, reason in zip(items, docs, failed, reasons):
            if not bad:
                self._write(item, doc, decide(self.filters, doc.signals) if self.all_signals else reason)

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

    def _write(self, item: _Pending, doc: Document, reason: str | None) -> None:
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
