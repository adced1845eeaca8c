"""The demo job end to end on the embedded sample: every stage, readable outputs, refilter."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.refilter import RefilterError, refilter
from pipeline.run import run_pipeline
from pipeline.sample import write_sample

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(ray_session, tmp_path_factory):
    sample = tmp_path_factory.mktemp("sample") / "sample.warc.gz"
    write_sample(sample)
    out = tmp_path_factory.mktemp("demo")
    cfg = load_config(REPO / "configs/sample.yaml",
                      [f"input.paths=[{sample}]", f"output.path={out}", "run.progress=false"])
    return cfg, out, run_pipeline(cfg)


def test_every_stage_wrote_its_outputs(demo):
    _, out, summary = demo
    for path in ("documents", "rejected", "stats", "curated", "dedup/removed.parquet", "dedup/stats.json",
                 "tokenizer/vocab.json", "tokenizer/merges.txt", "tokens/manifest.json", "run.json", "config.json"):
        assert (out / path).exists(), path
    manifest = json.loads((out / "tokens/manifest.json").read_text())
    assert len(manifest["shards"]) >= 2 and manifest["total_docs"] == summary["totals"]["kept"]


def test_accounting_and_removals_per_filter(demo):
    _, _, summary = demo
    t = summary["totals"]
    assert t["records"] == 61  # the sample's records, every one accounted for
    assert t["kept"] + sum(t["removed"].values()) + sum(t["errors"].values()) == t["records"]
    reasons = {r.split(":")[0] for r in t["removed"]}
    assert {"record", "not_html", "http_status", "language", "toxicity", "dedup"} <= reasons
    assert t["removed"]["dedup:exact"] == 2  # the two mirrors of the Python tutorial


def test_documents_read_with_pyarrow_duckdb_datasets(demo):
    _, out, summary = demo
    docs = pq.read_table(out / "documents").to_pylist()
    assert all(d["text"] and d["url"].startswith("http") and len(d["doc_id"]) == 16 for d in docs)
    assert duckdb.sql(f"select count(*) from '{out}/curated/*.parquet'").fetchall()[0][0] == summary["totals"]["kept"]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(out / "curated/*.parquet"), split="train",
                               cache_dir=str(out / "hf-cache"))
    assert len(ds) == summary["totals"]["kept"]


def test_pii_masked_in_kept_text(demo):
    _, out, _ = demo
    texts = duckdb.sql(f"select text, pii_emails, pii_phones from '{out}/documents/*.parquet' "
                       "where url like '%contact%'").fetchall()
    assert texts and "|||EMAIL_ADDRESS|||" in texts[0][0] and texts[0][1] > 0 and "@" not in texts[0][0]


def test_refilter_on_demo_output(demo, tmp_path):
    _, out, summary = demo
    tight = refilter(str(out), ["quality.min_score=0.6"], str(tmp_path / "tight"))
    assert tight["totals"]["kept"] <= summary["totals"]["kept"]
    assert tight["totals"]["removed"]["quality:low_score"] > summary["totals"]["removed"].get("quality:low_score", 0)
    assert json.loads((tmp_path / "tight/tokens/manifest.json").read_text())["tokenizer_sha256"] == \
        json.loads((out / "tokens/manifest.json").read_text())["tokenizer_sha256"]  # OUT's tokenizer reused
    # The demo runs with early exit: documents removed by toxicity never got a MinHash signature,
    # so letting them through is refused rather than decided on signals that were never computed.
    with pytest.raises(RefilterError, match="annotate.all_signals: true"):
        refilter(str(out), ["toxicity.max_hate=1.0", "toxicity.max_nsfw=1.0"], str(tmp_path / "loose"))


def test_rerun_resumes_and_a_new_threshold_only_re_decides(demo):
    cfg, out, summary = demo
    again = run_pipeline(cfg)
    assert again["totals"] == summary["totals"]
    assert again["stages"]["dedup"] == summary["stages"]["dedup"]
    other = cfg.model_copy(deep=True)
    other.filters["quality"].min_score = 0.9
    strict = run_pipeline(other)
    assert strict["resume"]["annotate_tasks_run"] == 0 and strict["resume"]["decide_tasks_run"] == 1
    assert strict["totals"]["kept_by_filters"] < summary["totals"]["kept_by_filters"]
    restored = run_pipeline(cfg)  # and back: the module's other tests read the demo's outputs
    assert restored["totals"] == summary["totals"]
