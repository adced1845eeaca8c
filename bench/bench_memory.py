"""Peak RSS of one annotate task (process_warc) as the WARC grows: streaming keeps it flat."""
from __future__ import annotations

from pathlib import Path

from bench.common import peak_mb, realweb_files, run_measured

_TASK = """
import time
from pipeline.stages.annotate import process_warc
from pipeline.config import parse_config
cfg = parse_config({{"input": {{"paths": [{path!r}]}}, "filters": {filters},
                    "output": {{"path": {out!r}, "keep_rejected": True}}}})
t = time.perf_counter()
stats = process_warc({path!r}, "task", cfg, {out!r})
print("SECONDS", time.perf_counter() - t, "DOCS", stats["documents"], "RECORDS", stats["records"])
"""

FILTERS = {"language": {}, "pii": {}, "gopher": {}, "gopher_repetition": {}, "c4": {}, "fineweb": {}, "toxicity": {}, "quality": {}, "minhash": {}}


def concatenated_warc(shared: Path, work: Path, copies: int) -> Path:
    """The realweb WARCs repeated `copies` times (gzip members concatenate into a valid WARC)."""
    path = work / f"realweb-x{copies}.warc.gz"
    if not path.exists():
        with open(path, "wb") as out:
            for _ in range(copies):
                for f in realweb_files(shared):
                    out.write(f.read_bytes())
    return path


def task_peak(path: Path, out: Path, filters: dict) -> tuple[float, float, int]:
    """(peak RSS MB, seconds, documents) of process_warc on `path` in a fresh process."""
    words = run_measured(_TASK.format(path=str(path), out=str(out), filters=repr(filters)))
    return peak_mb(words), float(words[words.index("SECONDS") + 1]), int(words[words.index("DOCS") + 1])


def run(shared: Path, work: Path, quick: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    sizes = [(realweb_files(shared)[0], "1 realweb file")]
    sizes.append((concatenated_warc(shared, work, 1 if quick else 3), "all 4 files" if quick else "all 4 files x 3"))
    rows = []
    for path, label in sizes:
        mb, seconds, docs = task_peak(path, work / "out", FILTERS)
        rows.append(f"| {label} | {path.stat().st_size / 2**20:.0f} | {docs:,} | {mb:.0f} | {seconds:.0f} |")
    return "\n".join(["## Memory: peak RSS of one WARC task", "",
                      "`process_warc` with every filter on, in a fresh process (peak from /proc VmHWM; the "
                      "models and libraries alone take most of it). Records are streamed, documents are "
                      "flushed to Parquet every 512 documents or 32M characters, records over "
                      "`input.max_record_bytes` are skipped unread.", "",
                      "| input | WARC MB (gz) | documents | peak RSS MB | seconds |", "|---|---:|---:|---:|---:|", *rows, ""])
