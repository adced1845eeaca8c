"""report.html: self-contained, every section, numbers equal to run.json, hostile text escaped,
bounded and seeded samples of the Parquet outputs, local and remote output directories."""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.report import page as report_module
from pipeline.report.page import EXAMPLE_CHARS, EXAMPLES_PER_REASON, OutputSample, render, write_report

HOSTILE = "<script>alert('owned')</script><img src=x onerror=alert(1)> cheap pills"
SECTION_IDS = ("funnel", "removals", "errors", "languages", "scores", "dedup", "tokens", "files", "time")


class Tables(HTMLParser):
    """Text of every cell of every <table id=...>, and every src/href value, of a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "table":
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table_id: str) -> dict[str, list[str]]:
        """Body rows keyed by their first cell."""
        return {row[0]: row[1:] for row in self.tables[table_id][1:]}


def _int(cell: str) -> int:
    return int(cell.replace(",", ""))


def _docs(n: int, reason: str | None, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {"doc_id": [f"{reason}-{seed}-{i}" for i in range(n)],
               "url": [f"http://site{i}.example/<b>page</b>?a=1&b=2" for i in range(n)],
               "warc_file": ["x.warc.gz"] * n,
               "text": [HOSTILE + " word" * 300] + [f"document {i} " * 40 for i in range(1, n)],
               "language": ["en"] * n, "language_score": rng.uniform(0.5, 1, n),
               "quality_score": rng.uniform(0, 1, n), "nsfw_score": rng.uniform(0, 0.2, n),
               "hate_score": rng.uniform(0, 0.2, n)}
    if reason:
        columns["reason"] = [reason] * n
    return pa.table(columns)


def _tiny_run(out: str) -> tuple:
    """A small but complete output directory (documents, rejected, stats, dedup) and its summary."""
    cfg = parse_config({"input": {"paths": ["x.warc.gz"]},
                        "filters": {"language": {}, "quality": {"min_score": 0.3}, "toxicity": {}},
                        "output": {"path": out}})
    storage.write_parquet(_docs(6, None, 0), storage.join(out, "documents", "x.parquet"))
    storage.write_parquet(pa.concat_tables([_docs(9, "quality:low_score", 1), _docs(2, "language:low_score", 2)]),
                          storage.join(out, "rejected", "x.parquet"))
    storage.atomic_write_json(storage.join(out, "stats", "x.json"), {
        "input": "s3://crawl/x.warc.gz", "documents": 17, "payload_bytes": 3 * 2**20, "seconds": 0.5,
        "error_samples": [{"reason": "read_error", "offset": 1234, "record_id": "<urn:uuid:1>",
                           "message": "Invalid WARC header <b>"}]})
    storage.write_parquet(pa.table({"doc_id": ["d1", "d2"], "url": ["http://dup.example/", "http://dup.example/2"],
                                    "reason": ["dedup:exact", "dedup:near"], "survivor_id": ["d0", "d0"]}),
                          storage.join(out, "dedup", "removed.parquet"))
    storage.atomic_write_bytes(storage.join(out, "dedup", "clusters.jsonl"), (json.dumps(
        {"cluster_id": 0, "size": 3, "survivor": {"doc_id": "d0", "url": "http://dup.example/"},
         "removed": [{"reason": "dedup:exact", "url": "http://dup.example/"},
                     {"reason": "dedup:near", "url": "http://dup.example/2"}]}) + "\n").encode())
    removed = {"quality:low_score": 9, "language:low_score": 2, "record:request": 20, "http_status:404": 3,
               "dedup:exact": 1, "dedup:near": 1}
    summary = {
        "name": "tiny <run>", "output": out, "config_hash": cfg.hash(), "inputs": 1, "wall_seconds": 4.5,
        "totals": {"files": 1, "failed_files": 0, "records": 43, "documents": 17, "kept_by_filters": 6, "kept": 4,
                   "removed": removed, "errors": {"read_error": 3}, "languages": {"en": 15, "de": 2},
                   "payload_bytes": 3 * 2**20, "text_chars": 40_000, "task_seconds": 0.5},
        "files": [{"input": "s3://crawl/x.warc.gz", "stem": "x", "status": "ok", "records": 43, "kept": 6,
                   "removed": {k: v for k, v in removed.items() if not k.startswith("dedup")},
                   "errors": {"read_error": 3}}],
        "stages": {"dedup": {"docs_in": 6, "docs_out": 4, "removed_by_reason": {"dedup:exact": 1, "dedup:near": 1},
                             "clusters": 1, "cluster_size_histogram": {"3": 1}, "boilerplate_lines": 2,
                             "lines_removed": 5, "docs_with_lines_removed": 2,
                             "near": {"candidate_pairs": 4, "verified_edges": 1, "largest_component": 2},
                             "phase_seconds": {"scan": 0.1}},
                   "tokenize": {"total_docs": 4, "total_tokens": 9_876, "vocab_size": 2048, "dtype": "uint16",
                                "shards": [{"docs": 4, "tokens": 9_876}], "tokenizer_sha256": "ab" * 32}},
        "stage_seconds": {"annotate": 2.0, "dedup": 0.5, "tokenize": 1.0},
    }
    return cfg, summary


def _assert_numbers_match(page: str, summary: dict) -> Tables:
    """Every count the page shows in its tables equals the summary (run.json)."""
    t = summary["totals"]
    tables = Tables(page)
    funnel = tables.rows("funnel-table")
    assert _int(funnel["input records"][0]) == t["records"]
    assert _int(funnel["documents extracted"][0]) == t["documents"]
    assert _int(funnel["kept by filters"][0]) == t["kept_by_filters"]
    if summary["stages"].get("dedup"):
        assert _int(funnel["kept after dedup"][0]) == t["kept"]
    if summary["stages"].get("tokenize"):
        assert _int(funnel["tokens"][0]) == summary["stages"]["tokenize"]["total_tokens"]
    shown = {**tables.rows("early-removals-table")}
    shown = {r: _int(cells[1]) for r, cells in shown.items()}
    if "removals-table" in tables.tables:
        shown.update({r: _int(cells[0]) for r, cells in tables.rows("removals-table").items()})
    assert shown == t["removed"]
    if t["errors"]:
        assert {r: _int(c[0]) for r, c in tables.rows("errors-table").items()} == t["errors"]
    if t.get("languages"):
        assert {k: _int(c[0]) for k, c in tables.rows("languages-table").items()} == t["languages"]
    files = tables.tables["files-table"][1:]
    assert len(files) == len(summary["files"])
    by_counts = sorted((_int(r[2]), _int(r[4]), _int(r[5]), _int(r[6])) for r in files)
    assert by_counts == sorted((f["records"], f["kept"], sum(f["removed"].values()), sum(f["errors"].values()))
                               for f in summary["files"])
    assert set(tables.rows("time-table")) == set(summary["stage_seconds"])
    return tables


def _assert_offline(page: str, tables: Tables) -> None:
    assert not re.search(r"<script|<link|@import|url\(", page, re.IGNORECASE)
    for link in tables.links:  # only inline data and in-page anchors
        assert link.startswith(("data:image/svg+xml;base64,", "#")), link[:80]


def test_tiny_run_report_is_complete_escaped_offline_and_matches_summary(tmp_path):
    cfg, summary = _tiny_run(str(tmp_path / "out"))
    page = render(cfg, summary)
    for section in SECTION_IDS:
        assert f'id="{section}"' in page
    tables = _assert_numbers_match(page, summary)
    _assert_offline(page, tables)
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    assert "tiny &lt;run&gt;" in page and "&lt;b&gt;page&lt;/b&gt;?a=1&amp;b=2" in page
    errors = tables.tables["error-samples"][1]
    assert errors[:3] == ["x.warc.gz", "read_error", "1,234"] and errors[4] == "Invalid WARC header <b>"
    dedup = tables.rows("dedup-table")
    assert _int(dedup["near-dup candidate pairs (LSH)"][0]) == 4 and _int(dedup["removed: dedup:near"][0]) == 1
    assert tables.rows("clusters-table")["3"][0] == "http://dup.example/"
    assert _int(tables.rows("tokens-table")["tokens"][0]) == 9_876
    assert page.count("data:image/svg+xml;base64,") >= 8  # funnel, removals, languages, 4 scores, clusters, time
    path = write_report(cfg, summary)
    assert path == str(tmp_path / "out/report.html") and open(path, encoding="utf-8").read() == page


def test_examples_are_a_bounded_seeded_sample_per_reason(tmp_path):
    cfg, summary = _tiny_run(str(tmp_path / "out"))
    page = render(cfg, summary)
    assert render(cfg, summary) == page  # same seed, same page
    examples = Tables(page).rows("removals-table")
    assert examples["quality:low_score"][2].count("http://site") == EXAMPLES_PER_REASON  # 9 rows, 3 shown
    assert examples["language:low_score"][2].count("http://site") == 2
    assert "duplicate of the kept copy at http://dup.example/" in examples["dedup:near"][2]
    snippets = [s for s in re.findall(r"<br>([^<]*)</div>", page) if not s.startswith("duplicate of")]
    assert len(snippets) == EXAMPLES_PER_REASON + 2  # quality: 3 of 9 rows, language: both of 2
    assert all(len(html.unescape(s)) <= EXAMPLE_CHARS + 1 for s in snippets)
    other_seed = cfg.model_copy(update={"run": cfg.run.model_copy(update={"seed": 7})})
    assert render(other_seed, summary) != page


def test_sampling_reads_bounded_rows_from_the_right_row_groups(tmp_path, monkeypatch):
    path = tmp_path / "rejected" / "big.parquet"
    path.parent.mkdir()
    n = 2_000
    table = pa.table({"reason": [f"r:{i % 4}" for i in range(n)], "url": [f"u{i}" for i in range(n)],
                      "quality_score": np.arange(n) / n})
    pq.write_table(table, path, row_group_size=128)  # many row groups
    sample = OutputSample(str(tmp_path), {}, seed=0)
    rows = np.array([0, 127, 128, 1000, 1999])
    picked = OutputSample.take_rows(pq.ParquetFile(path), rows, ["url", "quality_score"])
    assert picked.column("url").to_pylist() == [f"u{i}" for i in rows]

    monkeypatch.setattr(report_module, "SCORE_ROWS_PER_FILE", 300)
    scores = sample.numbers("rejected", ["quality_score", "nsfw_score"])
    assert len(scores["quality_score"]) == 300 and len(np.unique(scores["quality_score"])) == 300
    assert np.isnan(scores["nsfw_score"]).all() and len(scores["reason"]) == 300  # absent column: NaN, aligned
    assert all(r == f"r:{int(round(q * n)) % 4}" for q, r in zip(scores["quality_score"], scores["reason"]))

    examples = sample.examples([str(path)], ["url"], k=5)
    assert sorted(examples) == ["r:0", "r:1", "r:2", "r:3"]
    for reason, found in examples.items():
        assert len(found) == 5 and all(int(e["url"][1:]) % 4 == int(reason[-1]) for e in found)


def test_run_without_signals_dedup_or_tokens(tmp_path):
    out = tmp_path / "out"
    cfg = parse_config({"input": {"paths": ["a.warc.gz"]}, "output": {"path": str(out), "keep_rejected": False}})
    storage.write_parquet(pa.table({"doc_id": ["a"], "url": ["http://a.example/"], "text": ["hello"]}),
                          str(out / "documents/a.parquet"))
    summary = {"name": "bare", "config_hash": cfg.hash(), "inputs": 1, "wall_seconds": 1.0,
               "totals": {"records": 3, "documents": 1, "kept_by_filters": 1, "kept": 1,
                          "removed": {"record:request": 1}, "errors": {"open_error": 1}, "languages": {}},
               "files": [{"input": "a.warc.gz", "stem": "a", "status": "failed", "records": 3, "kept": 1,
                          "removed": {"record:request": 1}, "errors": {"open_error": 1}}],
               "stages": {}, "stage_seconds": {"annotate": 0.2}}
    page = render(cfg, summary)
    tables = _assert_numbers_match(page, summary)
    _assert_offline(page, tables)
    for text in ("Dedup was not run", "No token shards were written", "No classifier scores",
                 "No language signal", "see logs/driver.jsonl"):
        assert text in page
    assert "kept after dedup" not in tables.rows("funnel-table")


def test_report_on_a_remote_output_directory():
    out = "memory://sieve-report-test/out"
    cfg, summary = _tiny_run(out)
    path = write_report(cfg, summary)
    assert path == f"{out}/report.html"
    fs, p = storage.fs_and_path(path)
    page = fs.cat(p).decode()
    _assert_numbers_match(page, summary)
    assert page.count("http://site") >= EXAMPLES_PER_REASON + 2
    storage.remove_tree("memory://sieve-report-test")


@pytest.mark.slow
def test_report_of_a_real_run_matches_run_json(shared_data, ray_session, tmp_path):
    from pipeline.run import run_pipeline

    cfg = parse_config({"run": {"progress": False},
                        "input": {"paths": [str(shared_data / "warc/commoncrawl/*.warc.gz"),
                                            str(shared_data / "warc/other/*.warc.gz")]},
                        "filters": {"language": {}, "gopher": {}, "quality": {}},
                        "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
                        "output": {"path": str(tmp_path / "real")}})
    summary = run_pipeline(cfg)
    assert summary["report"] == str(tmp_path / "real/report.html")
    page = (tmp_path / "real/report.html").read_text(encoding="utf-8")
    run_json = json.loads((tmp_path / "real/run.json").read_text())
    tables = _assert_numbers_match(page, run_json)
    _assert_offline(page, tables)
    filtered = {r for r in run_json["totals"]["removed"] if r.split(":")[0] in ("language", "gopher", "quality")}
    examples = tables.rows("removals-table")
    assert filtered and all("http" in examples[r][2] for r in filtered)  # every filter reason has examples
    assert page.count("data:image/svg+xml;base64,") >= 5  # funnel, removals, languages, 2 score charts, time
