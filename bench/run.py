"""`make bench`: run every bench/bench_<topic>.py side by side and write bench/results.md.

Each module exposes `run(shared_data: Path, work_dir: Path, quick: bool) -> str` (a Markdown
section with ratios measured in this same run). `--quick` is the smoke mode used by the tests.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TOPICS = ["extract", "filters_rules", "classifiers", "annotate", "dedup", "tokenizer", "memory"]


def machine_line() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, commit {commit or '?'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=os.environ.get("SIEVE_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--work", default=str(BENCH_DIR / "work"))
    parser.add_argument("--out", default=str(BENCH_DIR / "results.md"))
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run, numbers not meaningful")
    parser.add_argument("--only", nargs="*", help="topics to run (default: all available)")
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    if not shared.is_dir():
        print(f"bench needs the shared data at {shared}", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sections = []
    for topic in args.only or TOPICS:
        try:
            module = importlib.import_module(f"bench.bench_{topic}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.bench_{topic}":
                continue
            raise
        print(f"[bench] {topic} ...", file=sys.stderr, flush=True)
        started = time.time()
        try:
            body = module.run(shared, work / topic, args.quick)
        except Exception:  # noqa: BLE001 - one failing benchmark must not hide the others
            body = f"## {topic}\n\nFAILED:\n\n```\n{traceback.format_exc()}\n```\n"
        sections.append(body.rstrip() + f"\n\n_{topic}: {time.time() - started:.0f} s wall_\n")
    header = ("# Sieve benchmarks\n\n"
              f"Measured by `make bench`{' (--quick: smoke sizes, not meaningful)' if args.quick else ''} "
              f"on {time.strftime('%Y-%m-%d')}: {machine_line()}.\n"
              "All ratios compare tools measured side by side in this same run on the same inputs; "
              "the machine is shared, so absolute numbers move between runs, ratios much less.\n")
    Path(args.out).write_text(header + "\n" + "\n".join(sections) + kept_scale_section(Path(args.out)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def kept_scale_section(results: Path) -> str:
    """`make bench-scale` writes its own section (10M documents: too long for `make bench`): keep it."""
    text = results.read_text() if results.exists() else ""
    start = text.find("\n## dedup at scale\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return "\n" + text[start: end if end >= 0 else None].strip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
