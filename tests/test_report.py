"""report.html: self-contained, complete, escaped, consistent with run.json."""
from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.report import render, write_report


def _tiny_run(tmp_path):
    out = tmp_path / "out"
    cfg = parse_config({"input": {"paths": ["x.warc.gz"]}, "output": {"path": str(out)}})
    hostile = "<script>alert('x')</script> buy now"
    storage.write_parquet(pa.table({"doc_id": ["a"], "url": ["http://spam.example/<b>"], "text": [hostile],
                                    "reason": ["quality:low_score"], "quality_score": [0.1]}),
                          str(out / "rejected/x.parquet"))
    storage.write_parquet(pa.table({"doc_id": ["b"], "url": ["http://ok.example/"], "text": ["fine text"],
                                    "quality_score": [0.9]}), str(out / "documents/x.parquet"))
    storage.atomic_write_json(str(out / "stats/x.json"), {"input": "x.warc.gz", "error_samples": [
        {"reason": "read_error", "offset": 1234, "record_id": "<urn:uuid:1>", "message": "Invalid WARC header"}]})
    summary = {"name": "tiny", "config_hash": cfg.hash(), "inputs": 1, "wall_seconds": 1.5,
               "totals": {"records": 5, "documents": 2, "kept_by_filters": 1, "kept": 1,
                          "removed": {"quality:low_score": 1, "record:request": 2}, "errors": {"read_error": 1},
                          "languages": {"en": 2}, "payload_bytes": 1000, "task_seconds": 0.5},
               "files": [{"input": "x.warc.gz", "status": "ok", "records": 5, "kept": 1,
                          "removed": {"quality:low_score": 1, "record:request": 2}, "errors": {"read_error": 1}}],
               "stages": {}, "stage_seconds": {"annotate": 0.7}}
    return cfg, summary


def test_tiny_report_sections_escaping_offline(tmp_path):
    cfg, summary = _tiny_run(tmp_path)
    page = render(cfg, summary)
    for section in ("Funnel", "Removals", "Errors", "Languages", "Scores", "Files", "Time and throughput"):
        assert f">{section}" in page
    assert "<script>" not in page and "&lt;script&gt;" in page      # hostile text is escaped
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)     # nothing loads from the network
    assert "1,234" in page and "Invalid WARC header" in page         # errors name file and offset
    assert "adds up" in page
    path = write_report(cfg, summary)
    assert path.endswith("report.html") and "Sieve run" in open(path).read()


@pytest.mark.slow
def test_report_of_a_real_run_matches_run_json(shared_data, ray_session, tmp_path):
    from pipeline.run import run_pipeline

    cfg = parse_config({"run": {"progress": False},
                        "input": {"paths": [str(shared_data / "warc/commoncrawl/*.warc.gz")]},
                        "filters": {"language": {}, "gopher": {}}, "dedup": {"enabled": False},
                        "tokenizer": {"enabled": False}, "output": {"path": str(tmp_path / "real")}})
    summary = run_pipeline(cfg)
    page = (tmp_path / "real/report.html").read_text()
    run_json = json.loads((tmp_path / "real/run.json").read_text())
    for reason, n in run_json["totals"]["removed"].items():
        assert f"<td>{reason}</td><td class=\"n\">{n:,}</td>" in page
    assert f"{summary['totals']['records']:,}" in page and page.count("data:image/png") >= 3
