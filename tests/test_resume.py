"""Resume: a rerun into the same output directory redoes only unfinished inputs and the stages
whose fingerprints changed (a threshold re-decides, a model re-annotates, a shard size re-encodes);
another set of inputs is refused there unless --overwrite starts fresh."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.run import main, run_pipeline
from tests.run_outputs import output_fingerprint, sample_config, sample_inputs

pytestmark = pytest.mark.slow
STAGE_DIRS = ("curated", "dedup", "tokenizer", "tokens")


def _mtimes(out: Path, *dirs: str) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for d in dirs for p in (out / d).rglob("*") if p.is_file()}


def _changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def _counts(totals: dict) -> dict:
    return {k: v for k, v in totals.items() if k != "task_seconds"}  # timing differs between runs


def test_rerun_redoes_only_what_is_missing(ray_session, tmp_path):
    inputs = sample_inputs(tmp_path / "in", ["a", "b", "c"])
    out = tmp_path / "out"
    cfg = sample_config(inputs, out)
    first = run_pipeline(cfg)
    assert first["resume"]["annotate_tasks_run"] == 3 and first["resume"]["stages_reused"] == []
    expected = output_fingerprint(out)
    assert expected["curated"] and expected["shards"]

    # Nothing missing: no task runs, both global stages are reused, no output is rewritten.
    before = _mtimes(out, "documents", "rejected", "stats", *STAGE_DIRS)
    again = run_pipeline(cfg)
    assert again["resume"] == {"annotate_tasks_run": 0, "annotate_inputs_reused": 3, "decide_tasks_run": 0,
                               "stages_reused": ["dedup", "tokenizer", "tokenize"], "temporaries_removed": 0}
    assert _changed(before, _mtimes(out, "documents", "rejected", "stats", *STAGE_DIRS)) == set()
    assert again["totals"] == first["totals"]

    # One input's completion marker and documents gone (its task died): only that input is redone;
    # its outcome is the same as before, so the global stages stay valid.
    os.remove(out / "stats/b.json")
    os.remove(out / "documents/b.parquet")
    redo = run_pipeline(cfg)
    assert redo["resume"]["annotate_tasks_run"] == 1
    assert redo["resume"]["stages_reused"] == ["dedup", "tokenizer", "tokenize"]
    assert _changed(before, _mtimes(out, "documents", "rejected", "stats", *STAGE_DIRS)) == \
        {"documents/b.parquet", "rejected/b.parquet", "stats/b.json"}
    assert _counts(redo["totals"]) == _counts(first["totals"])

    # Stage granularity: without the token manifest only tokenization runs again ...
    stages_before = _mtimes(out, *STAGE_DIRS)
    os.remove(out / "tokens/manifest.json")
    tokens_only = run_pipeline(cfg)
    assert tokens_only["resume"]["stages_reused"] == ["dedup", "tokenizer"]
    changed = _changed(stages_before, _mtimes(out, *STAGE_DIRS))
    assert changed and all(name.startswith("tokens/") for name in changed)  # the tokenizer is not retrained
    assert output_fingerprint(out) == expected

    # ... and without dedup's marker dedup runs again; it rewrites curated/ with the same documents
    # (same fingerprint), so the tokenizer and the shards made from them stay valid.
    os.remove(out / "dedup/stats.json")
    stages_before = _mtimes(out, *STAGE_DIRS)
    both = run_pipeline(cfg)
    assert both["resume"]["stages_reused"] == ["tokenizer", "tokenize"]
    changed = _changed(stages_before, _mtimes(out, *STAGE_DIRS))
    assert "dedup/stats.json" in changed and all(name.startswith(("dedup/", "curated/")) for name in changed)
    assert output_fingerprint(out) == expected
    assert json.loads((out / "run.json").read_text())["resume"]["stages_reused"] == ["tokenizer", "tokenize"]


def test_each_setting_redoes_only_the_stages_it_shapes(ray_session, tmp_path):
    inputs = sample_inputs(tmp_path / "in", ["a", "b"])
    out = tmp_path / "out"
    base = sample_config(inputs, out)
    first = run_pipeline(base)
    annotated = _mtimes(out, "documents", "rejected")

    # A tokenizer setting: no input is annotated or decided again, dedup is reused, the tokenizer
    # is retrained (the old refusal "holds a run of a different config" is gone).
    vocab = run_pipeline(sample_config(inputs, out, "tokenizer.vocab_size=600"))
    assert vocab["resume"]["annotate_tasks_run"] == vocab["resume"]["decide_tasks_run"] == 0
    assert vocab["resume"]["stages_reused"] == ["dedup"]
    assert vocab["stages"]["tokenize"]["vocab_size"] == 600
    assert _changed(annotated, _mtimes(out, "documents", "rejected")) == set()

    # A shard size: only the shards are rewritten, with the same tokenizer.
    shards = run_pipeline(sample_config(inputs, out, "tokenizer.vocab_size=600", "shards.target_tokens=700"))
    assert shards["resume"]["stages_reused"] == ["dedup", "tokenizer"]
    assert shards["stages"]["tokenize"]["tokenizer_sha256"] == vocab["stages"]["tokenize"]["tokenizer_sha256"]

    # A tighter threshold: the stored signals are re-decided (no model runs), then dedup and tokens redo.
    tight = run_pipeline(sample_config(inputs, out, "filters.quality.min_score=0.6"))
    assert tight["resume"]["annotate_tasks_run"] == 0 and tight["resume"]["decide_tasks_run"] == 2
    assert tight["resume"]["stages_reused"] == []
    assert tight["totals"]["kept_by_filters"] < first["totals"]["kept_by_filters"]
    assert tight["totals"]["records"] == first["totals"]["records"]

    # A signal parameter: the signals are recomputed (annotate runs), never re-decided as they were.
    recomputed = run_pipeline(sample_config(inputs, out, "filters.language.max_chars=300"))
    assert recomputed["resume"]["annotate_tasks_run"] == 2
    assert json.loads((out / "stats/a.json").read_text())["provenance"][0]["params"]["max_chars"] == 300

    # Back to the first config: annotated again (new signals), same outputs as the first run.
    again = run_pipeline(base)
    assert again["resume"]["annotate_tasks_run"] == 2
    assert _counts(again["totals"]) == _counts(first["totals"])


def test_a_looser_threshold_never_decides_on_skipped_signals(ray_session, tmp_path):
    inputs = sample_inputs(tmp_path / "in", ["a", "b"])
    loose = ("filters.language.allowed=[]", "filters.quality.min_score=0.0")
    # Early exit (the default): pages removed for their language skipped every later filter, so
    # letting them through annotates those inputs again instead of re-deciding skipped signals;
    # the outputs are those of a fresh run with the looser config.
    out = tmp_path / "early"
    run_pipeline(sample_config(inputs, out))
    again = run_pipeline(sample_config(inputs, out, *loose))
    assert again["resume"]["annotate_tasks_run"] == 2 and again["resume"]["decide_tasks_run"] == 0
    fresh = tmp_path / "fresh"
    run_pipeline(sample_config(inputs, fresh, *loose))
    assert output_fingerprint(out) == output_fingerprint(fresh)
    # Every signal computed (annotate.all_signals): the same change only re-decides, to the same documents.
    full = tmp_path / "all"
    run_pipeline(sample_config(inputs, full, "annotate.all_signals=true"))
    redecided = run_pipeline(sample_config(inputs, full, "annotate.all_signals=true", *loose))
    assert redecided["resume"]["annotate_tasks_run"] == 0 and redecided["resume"]["decide_tasks_run"] == 2
    assert output_fingerprint(full)["curated"] == output_fingerprint(fresh)["curated"]
    # Switching all_signals changes what the stored signals are: annotated again.
    switched = run_pipeline(sample_config(inputs, full, *loose))
    assert switched["resume"]["annotate_tasks_run"] == 2


def test_other_inputs_are_refused_and_overwrite_starts_fresh(ray_session, tmp_path, capsys):
    inputs = sample_inputs(tmp_path / "in", ["a", "b"])
    out = tmp_path / "out"
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps({"run": {"progress": False}, "input": {"paths": [str(p) for p in inputs]},
                                  "filters": {"language": {"allowed": ["en"]}},
                                  "dedup": {"enabled": False}, "tokenizer": {"enabled": False}}))
    assert main(["--config", str(config), "--output", str(out)]) == 0
    documents = (out / "documents/a.parquet").stat().st_mtime_ns
    (out / "left-by-the-first-run.txt").write_text("x")

    only_b = ["--config", str(config), "--output", str(out), "--set", f"input.paths=[{inputs[1]}]"]
    capsys.readouterr()
    assert main(only_b) == 2
    err = capsys.readouterr().err
    assert "does not list" in err and "'a'" in err and "--overwrite" in err and str(out) in err
    assert (out / "documents/a.parquet").stat().st_mtime_ns == documents  # untouched

    assert main([*only_b, "--overwrite"]) == 0
    fresh = json.loads((out / "run.json").read_text())
    assert not (out / "left-by-the-first-run.txt").exists() and not (out / "documents/a.parquet").exists()
    assert fresh["resume"]["annotate_tasks_run"] == 1 and [f["stem"] for f in fresh["files"]] == ["b"]
