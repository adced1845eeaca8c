"""Structured logs: JSON lines in OUT/logs/ for the driver and per input task, local and remote."""
from __future__ import annotations

import json
import logging
import threading

import fsspec
import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.report.logs import JsonLinesFile, driver_log, input_error_line, logged_input_task

log = logging.getLogger("sieve.test")


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8").read().splitlines()]


def _cfg(out: str):
    return parse_config({"input": {"paths": ["x.warc.gz"]}, "output": {"path": out}})


@logged_input_task
def _fake_task(input_path: str, stem: str, cfg, out: str) -> dict:
    log.warning("%s @%d: payload unreadable", input_path, 4096, extra={"offset": 4096, "reason": "payload_error"})
    log.info("not a warning: not in the task log")
    try:
        raise ValueError("bad chunk")
    except ValueError:
        log.exception("%s: unexpected error", input_path)
    return {"input": input_path}


def test_task_log_names_input_offset_and_traceback(tmp_path):
    out = str(tmp_path / "out")
    assert _fake_task("s3://bucket/a.warc.gz", "a", _cfg(out), out) == {"input": "s3://bucket/a.warc.gz"}
    first, second = _lines(tmp_path / "out/logs/tasks/a.jsonl")
    assert first["input"] == "s3://bucket/a.warc.gz" and first["offset"] == 4096 and first["level"] == "warning"
    assert first["reason"] == "payload_error" and first["logger"] == "sieve.test"
    assert second["level"] == "error" and "ValueError: bad chunk" in second["exc"]


def test_library_warnings_of_a_task_go_to_its_log(tmp_path):
    """A library's warning (warcio's on a damaged record) lands in the task's file, not on stderr:
    a Ray worker has no handler, so Python's last resort would print it on the console."""
    @logged_input_task
    def task(input_path, stem, cfg, out):
        logging.getLogger("warcio.recordloader").warning("Replacing spaces in invalid WARC-Target-URI")
        return {}

    out = str(tmp_path / "out")
    task("a.warc.gz", "a", _cfg(out), out)
    (entry,) = _lines(tmp_path / "out/logs/tasks/a.jsonl")
    assert entry["logger"] == "warcio.recordloader" and entry["input"] == "a.warc.gz"
    assert not any(isinstance(h, JsonLinesFile) for h in logging.getLogger().handlers)  # detached again


def test_console_line_of_an_input_counts_its_errors():
    ok = {"input": "s3://b/a.warc.gz", "stem": "a", "status": "ok", "errors": {"read_error": 3, "payload_error": 1},
          "error_samples": [{"reason": "read_error", "offset": 10, "message": "corrupt member"}]}
    assert input_error_line(ok, "out") == ("input s3://b/a.warc.gz: 3 read_error, 1 payload_error "
                                           "(details in out/logs/a.jsonl)")
    assert input_error_line({**ok, "errors": {}}, "out") is None
    failed = {**ok, "status": "failed", "errors": {"read_error": 2, "open_error": 1},
              "error_samples": [{"reason": "read_error", "offset": 10, "message": "corrupt member"},
                                {"reason": "open_error", "offset": None, "message": "503 after 5 tries"}]}
    assert input_error_line(failed, "out") == (
        "input s3://b/a.warc.gz failed: 2 read_error, 1 open_error [open_error: 503 after 5 tries] "
        "(details in out/logs/a.jsonl, out/logs/tasks/a.jsonl)")


def test_task_that_logs_nothing_writes_no_file(tmp_path):
    @logged_input_task
    def quiet(input_path, stem, cfg, out):
        return {}

    out = str(tmp_path / "out")
    quiet("a.warc.gz", "a", _cfg(out), out)
    assert not (tmp_path / "out/logs").exists()


def test_driver_log_appends_runs_and_records_failures(tmp_path):
    cfg = _cfg(str(tmp_path / "out"))
    with driver_log(cfg):
        log.error("input %s: task failed", "b.warc.gz", extra={"input": "b.warc.gz", "reason": "task_error"})
        other = threading.Thread(target=lambda: log.error("another thread's record"))
        other.start()
        other.join()
    with pytest.raises(RuntimeError), driver_log(cfg):
        raise RuntimeError("driver died")
    entries = _lines(tmp_path / "out/logs/driver.jsonl")
    assert [e["message"] for e in entries] == ["run started", "input b.warc.gz: task failed", "run finished",
                                               "run started", "run failed"]
    assert entries[1]["input"] == "b.warc.gz" and entries[0]["config_hash"] == cfg.hash()
    assert "RuntimeError: driver died" in entries[-1]["exc"] and entries[-1]["seconds"] >= 0
    assert not logging.getLogger("sieve").handlers  # detached again


def test_remote_log_is_buffered_then_appended():
    path = "memory://sieve-logs-test/out/logs/driver.jsonl"
    for n in range(2):
        handler = JsonLinesFile(path, max_records=2)
        for i in range(3):
            handler.handle(logging.makeLogRecord({"msg": f"run {n} record {i}", "levelno": 40, "levelname": "ERROR"}))
        handler.close()
    with fsspec.open(path, "rt") as fh:
        messages = [json.loads(line)["message"] for line in fh.read().splitlines()]
    assert messages == ["run 0 record 0", "run 0 record 1", "1 more log records left out",
                        "run 1 record 0", "run 1 record 1", "1 more log records left out"]
    storage.remove_tree("memory://sieve-logs-test")


def test_damaged_real_warc_logs_every_error_with_offset(shared_data, tmp_path):
    from pipeline.sample.damage import damage_variants
    from pipeline.stages.annotate import process_warc

    source = shared_data / "warc/commoncrawl/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"
    (flipped,) = damage_variants(source, tmp_path / "gen", seed=1, kinds=("bitflips",))
    path = str(flipped.path)
    out = str(tmp_path / "out")
    stats = process_warc(path, "flipped", _cfg(out), out)
    assert stats["errors"].get("read_error") == flipped.damaged_regions >= 2
    task_log = [e for e in _lines(tmp_path / "out/logs/tasks/flipped.jsonl") if e.get("reason")]
    error_log = _lines(tmp_path / "out/logs/flipped.jsonl")
    assert sorted((e["reason"], e["offset"]) for e in task_log) == sorted((e["reason"], e["offset"]) for e in error_log)
    assert all(e["input"] == path and isinstance(e["offset"], int) for e in task_log)
