"""Resume: rerunning a config into its output directory redoes only unfinished inputs and stages;
another config is refused there unless --overwrite starts fresh."""
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
    assert again["resume"] == {"annotate_tasks_run": 0, "annotate_inputs_reused": 3,
                               "stages_reused": ["dedup", "tokenize"], "temporaries_removed": 0}
    assert _changed(before, _mtimes(out, "documents", "rejected", "stats", *STAGE_DIRS)) == set()
    assert again["totals"] == first["totals"]

    # One input's completion marker and documents gone (its task died): only that input is redone;
    # its outcome is the same as before, so the global stages stay valid.
    os.remove(out / "stats/b.json")
    os.remove(out / "documents/b.parquet")
    redo = run_pipeline(cfg)
    assert redo["resume"]["annotate_tasks_run"] == 1 and redo["resume"]["stages_reused"] == ["dedup", "tokenize"]
    assert _changed(before, _mtimes(out, "documents", "rejected", "stats", *STAGE_DIRS)) == \
        {"documents/b.parquet", "rejected/b.parquet", "stats/b.json"}
    assert _counts(redo["totals"]) == _counts(first["totals"])

    # Stage granularity: without the token manifest only tokenization runs again ...
    stages_before = _mtimes(out, *STAGE_DIRS)
    os.remove(out / "tokens/manifest.json")
    tokens_only = run_pipeline(cfg)
    assert tokens_only["resume"]["stages_reused"] == ["dedup"]
    changed = _changed(stages_before, _mtimes(out, *STAGE_DIRS))
    assert changed and all(name.startswith(("tokens/", "tokenizer/")) for name in changed)
    assert output_fingerprint(out) == expected

    # ... and without dedup's marker both stages run (new curated files make old shards stale).
    os.remove(out / "dedup/stats.json")
    both = run_pipeline(cfg)
    assert both["resume"]["stages_reused"] == []
    assert {"dedup/stats.json", "tokens/manifest.json"} <= _changed(stages_before, _mtimes(out, *STAGE_DIRS))
    assert output_fingerprint(out) == expected
    assert json.loads((out / "run.json").read_text())["resume"]["stages_reused"] == []


def test_other_config_is_refused_and_overwrite_starts_fresh(ray_session, tmp_path, capsys):
    inputs = sample_inputs(tmp_path / "in", ["a"])
    out = tmp_path / "out"
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps({"run": {"progress": False}, "input": {"paths": [str(p) for p in inputs]},
                                  "filters": {"language": {"allowed": ["en"]}},
                                  "dedup": {"enabled": False}, "tokenizer": {"enabled": False}}))
    assert main(["--config", str(config), "--output", str(out)]) == 0
    first_hash = json.loads((out / "config.json").read_text())["config_hash"]
    first_kept = json.loads((out / "run.json").read_text())["totals"]["kept"]
    documents = (out / "documents/a.parquet").stat().st_mtime_ns
    (out / "left-by-the-first-run.txt").write_text("x")

    other = ["--config", str(config), "--output", str(out), "--set", "filters.language.allowed=[de]"]
    capsys.readouterr()
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "different config" in err and first_hash[:12] in err and "--overwrite" in err and str(out) in err
    assert json.loads((out / "config.json").read_text())["config_hash"] == first_hash  # untouched
    assert (out / "documents/a.parquet").stat().st_mtime_ns == documents

    assert main([*other, "--overwrite"]) == 0
    fresh = json.loads((out / "run.json").read_text())
    assert fresh["config_hash"] != first_hash
    assert json.loads((out / "config.json").read_text())["config_hash"] == fresh["config_hash"]
    assert not (out / "left-by-the-first-run.txt").exists()
    assert fresh["resume"]["annotate_tasks_run"] == 1
    assert fresh["totals"]["kept"] != first_kept  # German pages now, not English ones
