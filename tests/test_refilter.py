"""refilter re-decides stored signals: same thresholds -> same documents, no model, no WARC read."""
from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from pipeline.config import parse_config
from pipeline.refilter import RefilterError, refilter
from pipeline.run import run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored_run(shared_data, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("refilter") / "base"
    cfg = parse_config({
        "run": {"progress": False},
        "input": {"paths": [str(shared_data / "warc/commoncrawl/*.warc.gz"), str(shared_data / "warc/other/*.warc.gz")]},
        "filters": {"language": {"allowed": ["en"]}, "gopher": {}, "gopher_repetition": {}, "fineweb": {}},
        "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
        "output": {"path": str(out)},
    })
    return out, run_pipeline(cfg)


def _kept(out) -> set[str]:
    return {r[0] for r in duckdb.sql(f"select doc_id from '{out}/documents/*.parquet'").fetchall()}


def test_same_thresholds_same_documents(stored_run, tmp_path):
    out, summary = stored_run
    again = refilter(str(out), [], str(tmp_path / "same"))
    assert _kept(tmp_path / "same") == _kept(out)
    assert again["totals"]["kept"] == summary["totals"]["kept"]
    assert again["totals"]["records"] == summary["totals"]["records"]


def test_looser_keeps_a_superset_tighter_a_subset(stored_run, tmp_path, monkeypatch):
    out, summary = stored_run
    import filters.language

    # No model may run: make loading one fail loudly.
    monkeypatch.setattr(filters.language, "identify_language",
                        lambda *_: (_ for _ in ()).throw(AssertionError("model ran")))
    loose = refilter(str(out), ["language.allowed=[en, zh, ru]"], str(tmp_path / "loose"))
    tight = refilter(str(out), ["filters.gopher.min_words=200"], str(tmp_path / "tight"))
    assert _kept(tmp_path / "loose") >= _kept(out)
    # Chinese and Russian pages are no longer removed for their language (other rules may still apply).
    assert loose["totals"]["removed"].get("language:not_allowed", 0) < summary["totals"]["removed"]["language:not_allowed"]
    assert _kept(tmp_path / "tight") < _kept(out)
    for result in (loose, tight):
        t = result["totals"]
        assert t["kept"] + sum(t["removed"].values()) + sum(t["errors"].values()) == t["records"]
    assert "gopher:word_count" in tight["totals"]["removed"]


def test_filter_without_stored_signals_is_refused(stored_run, tmp_path):
    out, _ = stored_run
    with pytest.raises(RefilterError, match="no stored signals"):
        refilter(str(out), ["filters.c4={}"], str(tmp_path / "c4"))


def test_run_stored_before_the_gopher_split_refilters_the_same(stored_run, tmp_path):
    """A run whose config has one `gopher` section with the repetition thresholds too (as runs
    stored before `gopher_repetition` existed): refilter splits it and keeps the same documents."""
    out, summary = stored_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    stored = json.loads((old / "config.json").read_text())
    filters = stored["config"]["filters"]
    repetition = filters.pop("gopher_repetition")
    repetition.pop("enabled")
    filters["gopher"].update(repetition)
    (old / "config.json").write_text(json.dumps(stored))
    again = refilter(str(old), [], str(tmp_path / "again"))
    assert _kept(tmp_path / "again") == _kept(out)
    assert again["totals"]["removed"] == summary["totals"]["removed"]
    assert any(r.startswith("gopher_repetition:") for r in again["totals"]["removed"])
