"""refilter re-decides stored signals: same thresholds -> same documents, no model, no WARC read;
keys that cannot take effect are refused; documents name what computed their signals."""
from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.refilter import RefilterError, refilter
from pipeline.run import run_pipeline
from pipeline.stages.decide import redecide_input

pytestmark = pytest.mark.slow


def _run(shared_data, out, all_signals: bool) -> dict:
    return run_pipeline(parse_config({
        "run": {"progress": False},
        "input": {"paths": [str(shared_data / "warc/commoncrawl/*.warc.gz"), str(shared_data / "warc/other/*.warc.gz")]},
        "annotate": {"all_signals": all_signals},
        "filters": {"language": {"allowed": ["en"]}, "gopher": {}, "gopher_repetition": {}, "fineweb": {}},
        "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
        "output": {"path": str(out)},
    }))


@pytest.fixture(scope="module")
def stored_run(shared_data, ray_session, tmp_path_factory):
    """A run with every signal of every document (what refilters that loosen need)."""
    out = tmp_path_factory.mktemp("refilter") / "base"
    return out, _run(shared_data, out, all_signals=True)


def _reasons(out) -> dict[str, str | None]:
    return dict(duckdb.sql(f"select doc_id, null from '{out}/documents/*.parquet' union all "
                           f"select doc_id, reason from '{out}/rejected/*.parquet'").fetchall())


def test_early_exit_decides_the_same_and_refuses_a_refilter_that_needs_skipped_signals(
        stored_run, shared_data, tmp_path):
    out, summary = stored_run
    early = tmp_path / "early"
    early_summary = _run(shared_data, early, all_signals=False)
    # The same decision and reason for every document (the first failing filter), the same counts.
    assert _reasons(early) == _reasons(out)
    assert early_summary["totals"]["removed"] == summary["totals"]["removed"]
    # A document removed by language skipped the later filters: their signals are null.
    skipped = duckdb.sql(f"select count(*), count(gopher_word_count), count(fineweb_lines) from "
                         f"'{early}/rejected/*.parquet' where reason like 'language:%'").fetchall()[0]
    assert skipped[0] > 0 and skipped[1:] == (0, 0)
    assert pq.read_schema(next(early.glob("documents/*.parquet"))).metadata[b"sieve.all_signals"] == b"false"
    # Tighter thresholds re-decide exactly as on the full signals ...
    refilter(str(early), ["filters.gopher.min_words=200"], str(tmp_path / "tight-early"))
    refilter(str(out), ["filters.gopher.min_words=200"], str(tmp_path / "tight-all"))
    assert _reasons(tmp_path / "tight-early") == _reasons(tmp_path / "tight-all")
    # ... a looser one that lets documents reach filters they skipped is refused, naming the setting ...
    with pytest.raises(RefilterError, match=r"would now reach filter gopher.*annotate\.all_signals: true"):
        refilter(str(early), ["language.allowed=[en, zh, ru]"], str(tmp_path / "loose"))
    # ... and refilter cannot compute the missing signals itself.
    with pytest.raises(RefilterError, match=r"annotate\.all_signals: cannot take effect"):
        refilter(str(early), ["annotate.all_signals=true"], str(tmp_path / "all"))


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


def test_keys_that_cannot_take_effect_are_refused_with_the_reason(stored_run, tmp_path):
    out, _ = stored_run
    with pytest.raises(RefilterError, match=r"filters\.language\.max_chars: changes how the stored signals"):
        refilter(str(out), ["language.max_chars=100"], str(tmp_path / "a"))
    with pytest.raises(RefilterError, match=r"filters\.gopher\.stop_words"):
        refilter(str(out), ["gopher.stop_words=[the]"], str(tmp_path / "b"))
    with pytest.raises(RefilterError, match=r"extract\.main_content: cannot take effect"):
        refilter(str(out), ["extract.main_content=false"], str(tmp_path / "c"))
    with pytest.raises(RefilterError, match=r"input\.paths: cannot take effect"):
        refilter(str(out), ["input.paths=[x.warc.gz]"], str(tmp_path / "d"))
    assert not (tmp_path / "a").exists()  # refused before anything is written


def test_tokenizer_settings_take_effect_and_each_input_is_one_task(stored_run, tmp_path):
    out, summary = stored_run
    result = refilter(str(out), ["tokenizer.enabled=true", "tokenizer.vocab_size=300"], str(tmp_path / "tok"))
    assert result["stages"]["tokenize"]["vocab_size"] == 300
    assert result["resume"]["decide_tasks_run"] == summary["inputs"] and result["resume"]["annotate_tasks_run"] == 0
    assert result["totals"]["kept"] == summary["totals"]["kept"]


def test_documents_carry_the_provenance_of_their_signals(stored_run):
    out, _ = stored_run
    metadata = pq.read_schema(next((out / "documents").glob("*.parquet"))).metadata
    groups = {g["filter"]: g for g in json.loads(metadata[b"sieve.signals"])}
    assert list(groups) == ["language", "gopher", "gopher_repetition", "fineweb"]
    assert groups["language"]["params"] == {"model": "lid176", "max_chars": 2000}
    assert len(groups["language"]["files"]["model"]) == 64 and groups["gopher"]["version"] >= 1
    assert "min_score" not in groups["language"]["params"]  # thresholds are not part of a signal


def test_a_rewrite_killed_midway_loses_and_doubles_nothing(stored_run, tmp_path):
    """Re-deciding in place first writes rejected/ as the union of old and new rejections; a task
    killed right after leaves documents in both files, and the next attempt counts each once."""
    out, _ = stored_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    stem = max((p.stem for p in (copy / "documents").glob("*.parquet")),
               key=lambda s: pq.read_metadata(copy / "documents" / f"{s}.parquet").num_rows)
    kept, rejected = (pq.read_table(copy / sub / f"{stem}.parquet") for sub in ("documents", "rejected"))
    before = json.loads((copy / "stats" / f"{stem}.json").read_text())
    union = pa.concat_tables([rejected, kept.append_column("reason", pa.nulls(kept.num_rows, pa.string()))])
    pq.write_table(union, copy / "rejected" / f"{stem}.parquet")  # as a killed rewrite leaves it
    cfg = parse_config({**json.loads((copy / "config.json").read_text())["config"], "output": {"path": str(copy)}})
    stats = redecide_input(str(copy), stem, cfg, str(copy))
    assert stats["kept"] == before["kept"] and stats["removed"] == before["removed"]
    again = {sub: pq.read_table(copy / sub / f"{stem}.parquet", columns=["doc_id"]).column(0).to_pylist()
             for sub in ("documents", "rejected")}
    assert sorted(again["documents"]) == sorted(kept.column("doc_id").to_pylist())
    assert sorted(again["rejected"]) == sorted(rejected.column("doc_id").to_pylist())


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


def test_run_stored_before_early_exit_refilters_in_its_config_order(stored_run, tmp_path):
    """A config.json without `annotate` (runs from before early exit computed every signal, in the
    order of the `filters` mapping): refilter reads it so, and may loosen."""
    out, summary = stored_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    stored = json.loads((old / "config.json").read_text())
    del stored["config"]["annotate"]
    (old / "config.json").write_text(json.dumps(stored))
    assert refilter(str(old), [], str(tmp_path / "same"))["totals"]["removed"] == summary["totals"]["removed"]
    loose = refilter(str(old), ["language.allowed=[en, zh, ru]"], str(tmp_path / "loose"))
    assert _kept(tmp_path / "loose") >= _kept(out)
    assert loose["totals"]["records"] == summary["totals"]["records"]
