"""Helpers for the resume and fault-tolerance tests: small sample inputs, a fast config, and a
fingerprint of a run's final outputs (what "identical to an undisturbed run" compares)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.config import SieveConfig, load_config
from pipeline.sample import write_sample

REPO = Path(__file__).resolve().parents[1]


def sample_inputs(directory: Path, stems: list[str]) -> list[Path]:
    """One copy of the embedded sample WARC per stem (copies: dedup removes their duplicates)."""
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / f"{stems[0]}.warc.gz"
    write_sample(first)
    for stem in stems[1:]:
        shutil.copyfile(first, directory / f"{stem}.warc.gz")
    return [directory / f"{stem}.warc.gz" for stem in stems]


def sample_config(inputs: list[str | Path], out: Path, *overrides: str) -> SieveConfig:
    """configs/sample.yaml on `inputs` into `out`, with a small vocabulary (training stays fast)."""
    paths = json.dumps([str(p) for p in inputs])
    return load_config(REPO / "configs/sample.yaml",
                       [f"input.paths={paths}", f"output.path={out}", "run.progress=false",
                        "tokenizer.vocab_size=400", *overrides])


def output_fingerprint(out: Path) -> dict:
    """The kept doc_ids, every token shard's rows in file order, and the tokenizer's sha256."""
    curated = sorted(d for f in sorted((out / "curated").glob("*.parquet"))
                     for d in pq.read_table(f, columns=["doc_id"]).column(0).to_pylist())
    shards = {f.name: pq.read_table(f, columns=["doc_id", "input_ids"]).to_pylist()
              for f in sorted((out / "tokens").glob("shard-*.parquet"))}
    manifest = json.loads((out / "tokens/manifest.json").read_text())
    return {"curated": curated, "shards": shards, "tokenizer_sha256": manifest["tokenizer_sha256"],
            "manifest_shards": manifest["shards"]}


def temporaries(out: Path) -> list[Path]:
    """Files still under a temporary name (a task or driver killed mid-write leaves them)."""
    return [p for p in out.rglob(".tmp-*")]
