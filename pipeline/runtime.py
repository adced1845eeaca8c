"""The only module that talks to Ray: join or start it, and run one task per input.

The stages (pipeline/stages/) hand plain Python functions to these helpers or to the `ray` module
`init_ray` returns; blocks (filters/, readers, writers, the tokenizer) never see Ray.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipeline import storage
from pipeline.config import ConfigError, SieveConfig

log = logging.getLogger("sieve")


def ray_address(cfg: SieveConfig) -> str | None:
    """The cluster this run joins (run.ray_address, else RAY_ADDRESS), None for an embedded Ray."""
    return cfg.run.ray_address or os.environ.get("RAY_ADDRESS")


def check_output_reachable(cfg: SieveConfig) -> None:
    """Refuse, before any work, a local output.path on a cluster of several nodes: each task would
    write on the disk of whichever node ran it, scattering the outputs."""
    if not ray_address(cfg) or storage.is_remote(cfg.output.path) or cfg.output.shared_filesystem:
        return
    ray = init_ray(cfg)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1:
        raise ConfigError(
            f"output.path {cfg.output.path!r} is a local path, but the Ray cluster has {len(nodes)} nodes: each "
            "task would write on its own node's disk. Use an object store (output.path: s3://bucket/run) or, "
            "if every node mounts this path on a shared filesystem, set output.shared_filesystem: true.")


def init_ray(cfg: SieveConfig) -> Any:
    """Join the cluster named by run.ray_address / RAY_ADDRESS, else start an embedded Ray."""
    import ray

    if ray.is_initialized():
        return ray
    address = ray_address(cfg)
    repo_root = str(Path(__file__).resolve().parents[1])
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))}}
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env=None if os.environ.get("RAY_JOB_ID") else env)
    else:
        ray.init(num_cpus=cfg.run.num_cpus, include_dashboard=False, log_to_driver=True,
                 configure_logging=False, runtime_env=env)
    return ray


def run_input_tasks(cfg: SieveConfig, jobs: list[tuple[str, Any, str, str]], desc: str) -> dict[str, dict[str, Any]]:
    """Run each job `(input, func, source, stem)` as the Ray task `func(source, stem, cfg, out)`
    (`process_warc` or `redecide_input`), a bounded number in flight; returns each input's stats.
    A task that fails for good is reported as that input's error(task_error), not fatal."""
    from tqdm import tqdm

    from pipeline.report.logs import input_error_line

    ray = init_ray(cfg)
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": 3, "retry_exceptions": False}
    if cfg.run.task_memory_mb:
        options["memory"] = cfg.run.task_memory_mb * 1024 * 1024
    remote = {func: ray.remote(func).options(**options) for _, func, _, _ in jobs}
    max_in_flight = cfg.run.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    cfg_ref = ray.put(cfg)
    pending: dict[Any, tuple[str, str]] = {}  # task -> (input, stem)
    results: dict[str, dict[str, Any]] = {}
    queue = list(jobs)
    bar = tqdm(total=len(jobs), unit="file", desc=desc, disable=not cfg.run.progress, file=sys.stderr)
    records = docs = 0
    while queue or pending:
        while queue and len(pending) < max_in_flight:
            path, func, source, stem = queue.pop(0)
            pending[remote[func].remote(source, stem, cfg_ref, cfg.output.path)] = (path, stem)
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            path, stem = pending.pop(ref)
            try:
                stats = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a lost task is reported, not fatal
                log.error("input %s: task failed: %s", path, exc, extra={"input": path, "reason": "task_error"})
                stats = _failed_stats(path, stem, exc)
            else:  # the task logged its errors to OUT/logs/: one console line says how many of each
                if line := input_error_line(stats, cfg.output.path):
                    bar.write(line, file=sys.stderr)
            results[path] = stats
            records += stats["records"]
            docs += stats["kept"]
            bar.set_postfix(records=records, kept=docs, refresh=False)
            bar.update(1)
    bar.close()
    return results


def _failed_stats(path: str, stem: str, exc: BaseException) -> dict[str, Any]:
    """Stats for an input whose task died for good; not written to stats/ so a rerun retries it."""
    from pipeline.report.stats import FileStats

    stats = FileStats(input=path, stem=stem, status="failed")
    stats.add_error("task_error", message=f"{type(exc).__name__}: {exc}")
    return stats.to_json()
