"""Tokenize stage + token shards: readable everywhere, deterministic, split across ranks/workers, resumable."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.shards import TokenShards
from pipeline.tokenize import run_tokenize
from pipeline.tokenizer import Tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokens_run(shared_data, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    text = (shared_data / "quality/wikitext-2/valid.txt").read_text()
    paragraphs = [p.strip() for p in text.split("\n \n") if len(p.strip()) > 200][:300]
    files = []
    for f in range(3):
        rows = paragraphs[f::3]
        table = pa.table({"doc_id": [f"d{f}-{i}" for i in range(len(rows))],
                          "url": [f"https://w.example/{f}/{i}" for i in range(len(rows))],
                          "warc_file": [f"file{f}.warc.gz"] * len(rows), "text": rows})
        path = storage.join(str(out), "curated", f"file{f}.parquet")
        storage.write_parquet(table, path)
        files.append(path)
    cfg = parse_config({"input": {"paths": ["unused"]}, "tokenizer": {"vocab_size": 1000},
                        "shards": {"target_tokens": 20_000, "seed": 3}, "output": {"path": str(out)}})
    manifest = run_tokenize(cfg, str(out), files)
    return cfg, out, files, manifest, paragraphs


def test_manifest_and_shards(tokens_run):
    cfg, out, _, manifest, paragraphs = tokens_run
    assert manifest["total_docs"] == len(paragraphs)
    assert len(manifest["shards"]) > 1 and manifest["dtype"] == "uint16"
    assert manifest["vocab_size"] == 1000 and manifest["config_hash"] == cfg.hash()
    tok = Tokenizer.from_files(out / "tokenizer/vocab.json", out / "tokenizer/merges.txt", ["<|endoftext|>"])
    table = pa.concat_tables([storage.read_parquet(str(out / "tokens" / s["file"])) for s in manifest["shards"]])
    assert table.schema.field("input_ids").type == pa.list_(pa.uint16())
    by_id = dict(zip(table.column("doc_id").to_pylist(), table.column("input_ids").to_pylist()))
    ids = by_id["d0-0"]
    assert ids[-1] == manifest["eot_id"] and tok.decode(ids[:-1]) == paragraphs[0]
    assert sum(s["tokens"] for s in manifest["shards"]) == sum(table.column("num_tokens").to_pylist())


def test_shards_load_in_duckdb_polars_datasets(tokens_run):
    _, out, _, manifest, _ = tokens_run
    import duckdb
    import polars as pl

    pattern = str(out / "tokens" / "shard-*.parquet")
    assert duckdb.sql(f"select count(*) from '{pattern}'").fetchall()[0][0] == manifest["total_docs"]
    assert pl.read_parquet(pattern).height == manifest["total_docs"]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=pattern, split="train", cache_dir=str(out / "hf-cache"))
    assert len(ds) == manifest["total_docs"] and "input_ids" in ds.column_names


def test_rerun_is_resumed_and_layout_deterministic(tokens_run, tmp_path):
    cfg, out, files, manifest, _ = tokens_run
    assert run_tokenize(cfg, str(out), files) == manifest  # stage marker: nothing redone
    other = tmp_path / "again"
    again = run_tokenize(cfg.model_copy(update={"output": cfg.output.model_copy(update={"path": str(other)})}),
                         str(other), list(reversed(files)))
    assert [s["docs"] for s in again["shards"]] == [s["docs"] for s in manifest["shards"]]
    a = storage.read_parquet(str(out / "tokens/shard-00000.parquet")).column("doc_id").to_pylist()
    b = storage.read_parquet(str(other / "tokens/shard-00000.parquet")).column("doc_id").to_pylist()
    assert a == b  # same seed: same documents in the same order, however the work was split


def _all(ds):
    return [w.tolist() for w in ds]


def test_token_shards_windows_ranks_workers(tokens_run):
    _, out, _, manifest, _ = tokens_run
    path = str(out / "tokens")
    full = TokenShards(path, 64, seed=1)
    windows = _all(full)
    assert len(windows) == len(full) > 50
    assert all(len(w) == 65 for w in windows)
    assert all(a[-1] == b[0] for a, b in zip(windows, windows[1:]))  # packed: targets continue inputs
    assert _all(TokenShards(path, 64, seed=1)) == windows            # deterministic
    assert _all(TokenShards(path, 64, seed=2)) != windows            # the seed shuffles shard order
    ranks = [_all(TokenShards(path, 64, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert sorted(map(tuple, sum(ranks, []))) == sorted(map(tuple, windows))
    assert all(len(r) == len(TokenShards(path, 64, seed=1, rank=i, world_size=3)) for i, r in enumerate(ranks))
    # Two DataLoader-style workers, interleaved round-robin, give the rank's exact sequence.
    workers = [_all(TokenShards(path, 64, seed=1, rank=1, world_size=3, num_workers=2, worker_id=j)) for j in range(2)]
    interleaved = [w for pair in zip(*workers) for w in pair] + workers[0][len(workers[1]):]
    assert interleaved == ranks[1]


def test_token_shards_resume_mid_epoch(tokens_run):
    path = str(tokens_run[1] / "tokens")
    expected = _all(TokenShards(path, 32, seed=5, rank=0, world_size=2))
    ds = TokenShards(path, 32, seed=5, rank=0, world_size=2)
    first = []
    for window in ds:
        first.append(window.tolist())
        if len(first) == 10:
            break
    state = ds.state_dict()
    resumed = TokenShards(path, 32, seed=5, rank=0, world_size=2)
    resumed.load_state_dict(state)
    assert first + _all(resumed) == expected
    # With workers the trainer passes how many samples it consumed; any worker count resumes alike.
    for workers in (1, 3):
        parts = []
        for j in range(workers):
            ds_j = TokenShards(path, 32, seed=5, rank=0, world_size=2, num_workers=workers, worker_id=j)
            ds_j.load_state_dict(ds.state_dict(consumed=10))
            parts.append(_all(ds_j))
        merged = [w for k in range(max(map(len, parts))) for p in parts if k < len(p) for w in [p[k]]]
        assert merged == expected[10:]


def test_next_pass_is_next_epoch(tokens_run):
    ds = TokenShards(str(tokens_run[1] / "tokens"), 32, seed=5)
    epoch0, epoch1 = _all(ds), _all(ds)
    assert ds.epoch == 2 and sorted(map(tuple, epoch0)) != [] and epoch0 != epoch1


def test_torch_dataloader_when_installed(tokens_run):
    torch = pytest.importorskip("torch")
    path = str(tokens_run[1] / "tokens")
    loader = torch.utils.data.DataLoader(TokenShards(path, 32, seed=5, batch_size=4), batch_size=4, num_workers=2)
    batches = [b for b in loader]
    flat = [row.tolist() for b in batches for row in b]
    assert flat == _all(TokenShards(path, 32, seed=5))
    assert np.asarray(batches[0]).shape == (4, 33)
