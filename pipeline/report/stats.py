"""Accounting: every WARC record ends in exactly one bucket, kept / removed(reason) / error(reason).

`FileStats` is filled by the annotate task for one input; `RunTotals` adds them up with the
global stages' removals (dedup moves documents from kept to removed). `check()` proves the
buckets add up to the records seen, and the run refuses to report numbers that do not.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_ERROR_SAMPLES = 20
MAX_ERROR_LOG = 100_000  # per input; beyond it only the counts grow (error_log_dropped says how many)


def check_buckets(what: str, records: int, kept: int, removed: Counter, errors: Counter) -> None:
    """Raise unless kept + removed + errors == records (the accounting invariant)."""
    total = kept + sum(removed.values()) + sum(errors.values())
    if total != records:
        raise AssertionError(f"{what}: buckets add to {total}, records seen {records}")


@dataclass
class FileStats:
    input: str
    stem: str
    records: int = 0
    documents: int = 0  # records that reached the filters (extracted text)
    kept: int = 0
    removed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    error_log: list[dict[str, Any]] = field(default_factory=list)
    error_log_dropped: int = 0
    record_types: Counter = field(default_factory=Counter)
    content_types: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    payload_bytes: int = 0
    text_chars: int = 0
    seconds: float = 0.0
    status: str = "ok"  # ok | failed (could not be opened at all)

    def add_removed(self, reason: str) -> None:
        self.records += 1
        self.removed[reason] += 1

    def add_error(self, reason: str, *, offset: int | None = None, record_id: str = "", message: str = "") -> None:
        self.records += 1
        self.errors[reason] += 1
        entry = {"reason": reason, "offset": offset, "record_id": record_id, "message": message[:500]}
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(entry)
        if len(self.error_log) < MAX_ERROR_LOG:
            self.error_log.append(entry)
        else:
            self.error_log_dropped += 1

    def error_log_lines(self) -> bytes:
        """Every error as one JSON object per line: input, reason, byte offset, record id, message."""
        import json
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lines = [json.dumps({"time": stamp, "level": "error", "input": self.input, **e}) for e in self.error_log]
        if self.error_log_dropped:
            lines.append(json.dumps({"time": stamp, "level": "warning", "input": self.input,
                                     "message": f"{self.error_log_dropped} more errors not logged"}))
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def add_kept(self) -> None:
        self.records += 1
        self.kept += 1

    def check(self) -> None:
        check_buckets(self.input, self.records, self.kept, self.removed, self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input, "stem": self.stem, "status": self.status,
            "records": self.records, "documents": self.documents, "kept": self.kept,
            "removed": dict(self.removed.most_common()), "errors": dict(self.errors.most_common()),
            "error_samples": self.error_samples,
            "record_types": dict(self.record_types.most_common()),
            "content_types": dict(self.content_types.most_common(30)),
            "languages": dict(self.languages.most_common()),
            "payload_bytes": self.payload_bytes, "text_chars": self.text_chars,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class RunTotals:
    """Sum of per-file stats; global stages move kept documents into removed reasons."""

    files: int = 0
    failed_files: int = 0
    records: int = 0
    documents: int = 0
    kept_by_filters: int = 0
    kept: int = 0
    removed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    payload_bytes: int = 0
    text_chars: int = 0
    task_seconds: float = 0.0

    def add_file(self, stats: dict[str, Any]) -> None:
        self.files += 1
        self.failed_files += stats["status"] != "ok"
        self.records += stats["records"]
        self.documents += stats.get("documents", 0)
        self.kept_by_filters += stats["kept"]
        self.kept += stats["kept"]
        self.removed.update(stats["removed"])
        self.errors.update(stats["errors"])
        self.languages.update(stats.get("languages", {}))
        self.payload_bytes += stats.get("payload_bytes", 0)
        self.text_chars += stats.get("text_chars", 0)
        self.task_seconds += stats.get("seconds", 0.0)

    def remove_kept(self, removed_by_reason: dict[str, int]) -> None:
        """A global stage removed some kept documents (dedup)."""
        for reason, n in removed_by_reason.items():
            if n > self.kept:
                raise AssertionError(f"stage removed {n} ({reason}) but only {self.kept} kept")
            self.kept -= n
            self.removed[reason] += n

    def check(self) -> None:
        check_buckets("run", self.records, self.kept, self.removed, self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files, "failed_files": self.failed_files, "records": self.records,
            "documents": self.documents, "kept_by_filters": self.kept_by_filters, "kept": self.kept,
            "removed": dict(self.removed.most_common()),
            "errors": dict(self.errors.most_common()), "languages": dict(self.languages.most_common()),
            "payload_bytes": self.payload_bytes, "text_chars": self.text_chars,
            "task_seconds": round(self.task_seconds, 3),
        }
