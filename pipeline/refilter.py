"""Re-decide a finished run with new thresholds, from its stored signals only.

    python -m pipeline.refilter --from out/sample --set quality.min_score=0.6 --out out/sample-q06

The same mechanism as a rerun whose annotate outputs are up to date: no model runs and no input
is read. The stored documents and rejected documents of OUT (with their signals) are decided
again in one Ray task per input, written to OUT2 through the same storage layer as a run
(`input.storage_options` apply to both), and the global stages finish the new run, each reusing
nothing it does not match (see `pipeline.stages.fingerprint`). Unless a `tokenizer.*` key is set, OUT's
tokenizer is loaded (same tokens, comparable counts).

A key that cannot take effect is refused with the reason, never ignored: inputs and extraction
(refilter reads no input), a filter's signal parameters or model (its stored signals were computed
otherwise: rerun the pipeline, which recomputes them), a filter OUT did not run. Loosening a
threshold brings documents back only if OUT kept its rejected documents (output.keep_rejected),
and, when it lets a document reach a filter that OUT skipped for it (OUT ran without
`annotate.all_signals`, so a removed document has no signals of the later filters), is refused
with the document and the filter named: rerun with `annotate.all_signals: true` for that.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import yaml

from filters import registry
from filters.gopher import split_combined_params
from pipeline import storage
from pipeline.config import ConfigError, SieveConfig, apply_override, parse_config
from pipeline.report.logs import driver_log
from pipeline.run import finish_run, prepare_output, print_summary
from pipeline.runtime import check_output_reachable, run_input_tasks
from pipeline.stages.decide import MissingSignals, build_filters, redecide_input
from pipeline.stages.fingerprint import provenance

# Override keys refilter can never apply, and why.
FIXED_SECTIONS = {
    "input": "refilter reads the stored documents of {source}, not the inputs",
    "extract": "extraction happened in {source}; rerun the pipeline to extract again",
    "annotate": "the signals were computed in {source}; rerun the pipeline to compute them otherwise "
                "(annotate.all_signals: true gives every document every signal, for refilters that loosen)",
}
IO_KEYS = ("input.storage_options", "input.retries", "input.retry_backoff_s", "input.timeout_s")


class RefilterError(RuntimeError):
    pass


def _qualify(assignment: str) -> str:
    """`quality.min_score=0.6` -> `filters.quality.min_score=0.6` (filter names are a shorthand)."""
    key = assignment.split("=", 1)[0]
    return f"filters.{assignment}" if key.split(".", 1)[0] in registry() else assignment


def refilter_config(source: str, overrides: list[str], out: str,
                    storage_options: dict[str, Any] | None = None) -> tuple[SieveConfig, SieveConfig]:
    """(config of the stored run, new config writing to `out`); refuses keys that cannot take effect."""
    stored = storage.read_json(storage.join(source, "config.json"), storage_options)
    raw_old = stored["config"]
    if isinstance(raw_old.get("filters"), dict):  # a run from before Gopher's repetition rules had their own filter
        raw_old = {**raw_old, "filters": split_combined_params(raw_old["filters"])}
        if "annotate" not in raw_old:  # a run from before early exit: config order, every signal computed
            raw_old["annotate"] = {"order": list(raw_old["filters"]), "all_signals": True}
    old = parse_config(raw_old, f"{source}/config.json")
    raw = old.dump()
    overrides = [_qualify(a) for a in overrides]
    keys = [a.split("=", 1)[0].strip() for a in overrides]
    for key, assignment in zip(keys, overrides):
        section = key.split(".", 1)[0]
        if section in FIXED_SECTIONS and not key.startswith(IO_KEYS):
            raise RefilterError(f"--set {key}: cannot take effect: " + FIXED_SECTIONS[section].format(source=source))
        apply_override(raw, assignment)
    if storage_options is not None:
        raw["input"]["storage_options"] = storage_options
    raw["output"]["path"] = out
    raw["output"]["overwrite"] = False
    tokenizer_dir = storage.join(source, "tokenizer")
    tokenizer_set = any(key.startswith("tokenizer.") for key in keys)
    if (raw["tokenizer"]["enabled"] and not tokenizer_set and not raw["tokenizer"]["path"]
            and storage.exists(storage.join(tokenizer_dir, "vocab.json"), storage_options)):
        raw["tokenizer"]["path"] = tokenizer_dir  # same tokens as OUT: comparable counts, no retraining
    if raw["tokenizer"]["path"] and tokenizer_set:
        trained_only = [k for k in ("vocab_size", "train_sample_bytes") if f"tokenizer.{k}" in keys]
        if trained_only:
            raise RefilterError(f"--set tokenizer.{trained_only[0]}: cannot take effect: tokenizer.path loads "
                                f"{raw['tokenizer']['path']} instead of training (add --set tokenizer.path=null)")
    new = parse_config(raw, "refilter")
    missing = [name for name in new.filters if new.filters[name].enabled and name not in old.filters]
    if missing:
        raise RefilterError(f"{source} has no stored signals for filter(s) {missing}: they were not configured "
                            "in that run; rerun the pipeline with them instead of refiltering")
    _check_signals_unchanged(old, new, source)
    return old, new


def _check_signals_unchanged(old: SieveConfig, new: SieveConfig, source: str) -> None:
    """Refuse a config whose filters would compute their signals otherwise than the stored ones
    (a signal parameter, a model file's content, the filter order or a filter's code version)."""
    before = {p["filter"]: p for p in provenance(build_filters(old))}
    after = provenance(build_filters(new))
    if [p["filter"] for p in after] != [name for name in before if name in {p["filter"] for p in after}]:
        raise RefilterError(f"filters: a new order changes what later filters see (PII masking rewrites the text); "
                            f"the signals of {source} were computed in the order {list(before)}")
    for now in after:
        then = before[now["filter"]]
        changed = [f"filters.{now['filter']}.{k}" for k in sorted(set(now["params"]) | set(then["params"]))
                   if now["params"].get(k) != then["params"].get(k)]
        changed += [f"filters.{now['filter']}.{k} (file content)" for k in now["files"]
                    if now["files"][k] != then["files"].get(k) and f"filters.{now['filter']}.{k}" not in changed]
        if now["version"] != then["version"]:
            changed.append(f"filters.{now['filter']} (code version {then['version']} -> {now['version']})")
        if changed:
            raise RefilterError(f"{', '.join(changed)}: changes how the stored signals of {source} were computed, so "
                                "re-deciding them would be wrong; rerun the pipeline with this setting instead "
                                "(into that output it recomputes the signals and reuses what they do not change)")


def redecide_or_refuse(source: str, stem: str, cfg: SieveConfig, out: str) -> dict[str, Any]:
    """Refilter's task: `redecide_input`, or `{"refused": why}` (nothing written) when a document
    would reach a filter whose signals `source` never computed for it."""
    try:
        return redecide_input(source, stem, cfg, out)
    except MissingSignals as exc:
        return {"refused": str(exc), "input": source, "stem": stem, "records": 0, "kept": 0}


def refilter(source: str, overrides: list[str], out: str,
             storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    started = time.time()
    if storage_options is None:  # needed before config.json can be read from an object store
        storage_options = next((yaml.safe_load(a.split("=", 1)[1]) for a in overrides
                                if a.split("=", 1)[0].strip() == "input.storage_options"), None)
    old, cfg = refilter_config(source, overrides, out, storage_options)
    opts = cfg.input.storage_options
    if not old.output.keep_rejected:
        print(f"note: {source} did not keep rejected documents; only tighter thresholds take effect",
              file=sys.stderr)
    stats_files = storage.listdir(storage.join(source, "stats"), ".json", opts)
    stored = [storage.read_json(path, opts) for path in stats_files]
    check_output_reachable(cfg)
    prepare_output(cfg, [s["stem"] for s in stored])
    with driver_log(cfg):
        t0 = time.time()
        jobs = [(s["input"], redecide_or_refuse, source, s["stem"]) for s in stored]
        results = run_input_tasks(cfg, jobs, "refilter")
        refused = [r["refused"] for r in results.values() if "refused" in r]
        if refused:
            raise RefilterError(f"{refused[0]} ({len(refused)} of {len(stored)} input(s) refused; {out} is "
                                "incomplete)")
        file_stats = [results[s["input"]] for s in stored]
        work = {"decide_tasks_run": len(jobs), "annotate_tasks_run": 0}
        return finish_run(cfg, len(stored), file_stats, {"refilter": time.time() - t0}, started, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.refilter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, help="output directory of a finished run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="new value, e.g. quality.min_score=0.6 or filters.language.allowed=[en,de]")
    parser.add_argument("--out", required=True, help="new output directory")
    args = parser.parse_args(argv)
    try:
        summary = refilter(args.source, args.overrides, args.out)
    except (ConfigError, RefilterError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
