"""Structured logs: JSON lines in OUT/logs/, one file for the driver and one per annotate task.

- `logs/driver.jsonl`: the orchestrator's side of every run into this directory (appended, so a
  resumed run adds to it): run start and end (or the traceback that ended it), and every warning
  or error logged under `sieve` meanwhile, e.g. an input whose task failed for good.
- `logs/tasks/<stem>.jsonl`: every warning and error logged while the annotate task of one input
  ran, by Sieve (IO retries with the byte position, unreadable tails, payload and filter errors
  with their record offset, tracebacks) and by the libraries it calls (e.g. warcio's notes on a
  damaged record). Rewritten when Ray retries the task; absent when the task logged nothing.
- `logs/<stem>.jsonl` (written by the task from its `FileStats`) lists every error of one input.

Each line is one JSON object: `time`, `level`, `logger`, `message`, the fields the call passed with
`extra=` (`input`, `offset`, `record_id`, `reason`, ...) and `exc` (the traceback) when there is one.

The console: the driver's own logging is unchanged (these handlers are added next to it). A task's
records go to its file only: a Ray worker has no log handler of its own, so Python would print each
record on stderr and Ray would forward every one of them to the driver's console (thousands of
lines for one damaged WARC). The driver prints one line per input with its error counts instead
(`pipeline.run`).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from pipeline import storage
from pipeline.config import SieveConfig

LOGGER = "sieve"
MAX_TASK_RECORDS = 10_000  # per input; beyond it only a count of the records left out
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, with every `extra=` field as a key of its own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JsonLinesFile(logging.Handler):
    """Writes formatted records to `path` (local or remote).

    Local files are appended to line by line, so a killed process leaves what it logged. Object
    stores cannot append: records are kept in memory (at most `max_records`) and written, after
    the file's previous content, when the handler is closed.
    """

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None, *, level: int = logging.WARNING,
                 append: bool = True, max_records: int | None = None) -> None:
        super().__init__(level)
        self.path, self.storage_options, self.append = path, storage_options or {}, append
        self.max_records, self.dropped = max_records, 0
        self.lines: list[str] = []
        self.stream = None
        if append and not storage.is_remote(path):
            local = path.removeprefix("file://")
            os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
            self.stream = open(local, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.setFormatter(JsonLinesFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.stream is not None:
                self.stream.write(line + "\n")
                self.stream.flush()
            elif self.max_records is None or len(self.lines) < self.max_records:
                self.lines.append(line)
            else:
                self.dropped += 1
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)

    def close(self) -> None:
        try:
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            elif self.lines:
                self._write_buffer()
        finally:
            super().close()

    def _write_buffer(self) -> None:
        if self.dropped:
            self.lines.append(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                          "level": "warning", "logger": LOGGER,
                                          "message": f"{self.dropped} more log records left out"}))
        data = ("\n".join(self.lines) + "\n").encode()
        if self.append and storage.exists(self.path, self.storage_options):
            fs, p = storage.fs_and_path(self.path, self.storage_options)
            with fs.open(p, "rb") as fh:
                data = fh.read() + data
        storage.atomic_write_bytes(self.path, data, self.storage_options)
        self.lines = []


class _SameThread(logging.Filter):
    """Accept only records of the thread that opened the log (tests run tasks in threads too)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.thread, self.fields = threading.get_ident(), fields

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return False
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


@contextmanager
def _attached(handler: logging.Handler, logger_name: str = LOGGER) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


@contextmanager
def driver_log(cfg: SieveConfig) -> Iterator[None]:
    """Append this run's start, end and `sieve` warnings/errors to OUT/logs/driver.jsonl.

    Enter it only once the output directory belongs to this config (after `prepare_output`).
    """
    handler = JsonLinesFile(storage.join(cfg.output.path, "logs", "driver.jsonl"), cfg.input.storage_options)
    handler.addFilter(_SameThread({}))
    fields = {"run": cfg.run.name, "config_hash": cfg.hash(), "host": socket.gethostname(), "pid": os.getpid()}
    with _attached(handler):
        _event(handler, logging.INFO, "run started", fields)
        started = time.time()
        try:
            yield
        except BaseException:
            _event(handler, logging.ERROR, "run failed", {**fields, "seconds": round(time.time() - started, 3)},
                   exc=True)
            raise
        _event(handler, logging.INFO, "run finished", {**fields, "seconds": round(time.time() - started, 3)})


def _event(handler: logging.Handler, level: int, message: str, fields: dict[str, Any], *, exc: bool = False) -> None:
    """A lifecycle record written straight to the file, whatever the console's log level."""
    import sys

    record = logging.getLogger(LOGGER).makeRecord(LOGGER, level, __file__, 0, message, (),
                                                  sys.exc_info() if exc else None, extra=fields)
    handler.handle(record)


@contextmanager
def task_log(out: str, stem: str, input_path: str, storage_options: dict[str, Any] | None = None) -> Iterator[None]:
    """Collect the warnings and errors of one input's task, Sieve's and its libraries', into
    OUT/logs/tasks/<stem>.jsonl (on the root logger: the records of every logger reach it, and no
    record falls through to Python's last-resort handler, which prints on stderr)."""
    handler = JsonLinesFile(storage.join(out, "logs", "tasks", f"{stem}.jsonl"), storage_options,
                            append=False, max_records=MAX_TASK_RECORDS)
    handler.addFilter(_SameThread({"input": input_path}))
    with _attached(handler, ""):
        yield


def logged_input_task(task: Callable[[str, str, SieveConfig, str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Decorate the per-input task `(input_path, stem, cfg, out)` so that its log lands in OUT/logs/tasks/."""

    @functools.wraps(task)
    def run(input_path: str, stem: str, cfg: SieveConfig, out: str) -> dict[str, Any]:
        with task_log(out, stem, input_path, cfg.input.storage_options):
            return task(input_path, stem, cfg, out)

    return run


def input_error_line(stats: dict[str, Any], out: str) -> str | None:
    """The one console line the driver prints for an input that had errors (None if it had none):
    the counts by reason and the file holding each error with its offset. A failed input also
    says why (its error without a record offset) and where the traceback is."""
    errors = stats.get("errors") or {}
    if not errors:
        return None
    counts = ", ".join(f"{n} {reason}" for reason, n in errors.items())
    details = storage.join(out, "logs", f"{stats['stem']}.jsonl")
    if stats.get("status") != "failed":
        return f"input {stats['input']}: {counts} (details in {details})"
    cause = next((e for e in reversed(stats.get("error_samples") or []) if e.get("offset") is None), None)
    why = f" [{cause['reason']}: {cause['message'][:300]}]" if cause else ""
    traceback = storage.join(out, "logs", "tasks", f"{stats['stem']}.jsonl")
    return f"input {stats['input']} failed: {counts}{why} (details in {details}, {traceback})"
