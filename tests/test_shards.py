"""Token shards: written by hash range and readable everywhere; TokenShards packs, splits across
ranks and workers deterministically, and resumes mid-epoch (no Ray, no tokenizer needed); the
stage's encode + write path (no Ray) gives each document exactly one end-of-text id, at its end,
whatever special-token strings its text holds."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from pipeline import storage
from pipeline.tokens.shards import (
    PlainTokenShards,
    TokenShards,
    doc_hash,
    part_schema,
    shard_manifest,
    shard_name,
    shard_of,
    write_part,
    write_shard,
)

EOT_ID = 999
VOCAB = 1000


def _docs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"doc_id": f"doc-{i}", "ids": np.append(rng.integers(0, EOT_ID, rng.integers(5, 120)), EOT_ID)}
            for i in range(n)]


def _part_table(docs: list[dict], seed: int) -> pa.Table:
    schema = part_schema(VOCAB)
    return pa.table({"input_ids": [d["ids"].astype(np.uint16) for d in docs],
                     "num_tokens": [len(d["ids"]) for d in docs],
                     "doc_id": [d["doc_id"] for d in docs],
                     "url": [f"https://x.example/{d['doc_id']}" for d in docs],
                     "source": ["a.warc.gz"] * len(docs),
                     "doc_hash": [doc_hash(d["doc_id"], seed) for d in docs]},
                    schema=schema.remove(schema.get_field_index("shard")))


def write_tokens(tokens_dir, docs: list[dict], num_parts: int, num_shards: int, seed: int = 3) -> dict:
    """The stage's write path without Ray: parts -> shards -> manifest."""
    parts = []
    for p in range(num_parts):
        path = str(tokens_dir / ".parts" / f"{p}.parquet")
        write_part(_part_table(docs[p::num_parts], seed), num_shards, path)
        parts.append(path)
    shards = [write_shard(parts, k, VOCAB, str(tokens_dir / shard_name(k))) for k in range(num_shards)]
    manifest = shard_manifest(shards, VOCAB, {"<|endoftext|>": EOT_ID}, EOT_ID, seed)
    storage.atomic_write_json(str(tokens_dir / "manifest.json"), manifest)
    storage.remove_tree(str(tokens_dir / ".parts"))
    return manifest


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    docs = _docs(400)
    tokens_dir = tmp_path_factory.mktemp("tok") / "tokens"
    return tokens_dir, write_tokens(tokens_dir, docs, num_parts=3, num_shards=4), docs


def test_every_document_in_exactly_one_shard_in_hash_order(tokens):
    tokens_dir, manifest, docs = tokens
    assert manifest["total_docs"] == len(docs) and manifest["dtype"] == "uint16"
    assert manifest["total_tokens"] == sum(len(d["ids"]) for d in docs)
    seen = {}
    for k, shard in enumerate(manifest["shards"]):
        table = storage.read_parquet(str(tokens_dir / shard["file"]))
        assert table.schema.field("input_ids").type == pa.list_(pa.uint16())
        assert table.column_names == ["input_ids", "num_tokens", "doc_id", "url", "source"]
        hashes = np.array([doc_hash(d, 3) for d in table.column("doc_id").to_pylist()], dtype=np.uint64)
        assert (np.diff(hashes.astype(object)) > 0).all() and (shard_of(hashes, 4) == k).all()
        assert shard["docs"] == table.num_rows and shard["tokens"] == sum(table.column("num_tokens").to_pylist())
        for row in table.to_pylist():
            seen[row["doc_id"]] = row["input_ids"]
    assert seen == {d["doc_id"]: d["ids"].tolist() for d in docs}
    assert 50 < min(s["docs"] for s in manifest["shards"])  # equal hash ranges: balanced shards


def test_layout_does_not_depend_on_how_work_was_split(tokens, tmp_path):
    tokens_dir, manifest, docs = tokens
    other = write_tokens(tmp_path / "tokens", list(reversed(docs)), num_parts=5, num_shards=4)
    assert other["shards"] == manifest["shards"]
    for shard in manifest["shards"]:
        assert storage.read_parquet(str(tmp_path / "tokens" / shard["file"])).equals(
            storage.read_parquet(str(tokens_dir / shard["file"])))


def test_parts_keep_one_row_group_per_shard(tmp_path):
    import pyarrow.parquet as pq

    path = str(tmp_path / "part.parquet")
    write_part(_part_table(_docs(200), 0), 6, path)
    meta = pq.ParquetFile(path).metadata
    shard_column = meta.schema.names.index("shard")
    per_group = [(meta.row_group(g).column(shard_column).statistics.min, meta.row_group(g).column(shard_column).statistics.max)
                 for g in range(meta.num_row_groups)]
    assert meta.num_row_groups == 6 and all(lo == hi for lo, hi in per_group)


def test_shards_load_in_pyarrow_duckdb_polars_datasets(tokens):
    import duckdb
    import polars as pl
    import pyarrow.dataset as pads

    tokens_dir, manifest, _ = tokens
    pattern = str(tokens_dir / "shard-*.parquet")
    assert pads.dataset(str(tokens_dir), format="parquet", exclude_invalid_files=True).count_rows() == manifest["total_docs"]
    assert duckdb.sql(f"select sum(len(input_ids)) from '{pattern}'").fetchall()[0][0] == manifest["total_tokens"]
    assert pl.read_parquet(pattern)["num_tokens"].sum() == manifest["total_tokens"]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=pattern, split="train", cache_dir=str(tokens_dir.parent / "hf"))
    assert len(ds) == manifest["total_docs"] and "input_ids" in ds.column_names


def _all(ds) -> list[list[int]]:
    return [w.tolist() for w in ds]


def _stream(tokens_dir, manifest, seed: int, epoch: int) -> list[int]:
    order = np.random.default_rng([seed, epoch]).permutation(len(manifest["shards"]))
    return [t for k in order for ids in storage.read_parquet(str(tokens_dir / manifest["shards"][k]["file"]))
            .column("input_ids").to_pylist() for t in ids]


def test_windows_pack_the_shuffled_token_stream(tokens):
    tokens_dir, manifest, _ = tokens
    ds = TokenShards(str(tokens_dir), 64, seed=1)
    windows = _all(ds)
    stream = _stream(tokens_dir, manifest, seed=1, epoch=0)
    assert windows == [stream[k * 64: k * 64 + 65] for k in range((len(stream) - 1) // 64)]
    assert len(windows) == len(TokenShards(str(tokens_dir), 64, seed=1)) > 100
    assert _all(TokenShards(str(tokens_dir), 64, seed=1)) == windows  # deterministic
    assert _all(TokenShards(str(tokens_dir), 64, seed=2)) != windows  # the seed orders the shards


def test_ranks_and_workers_split_deterministically(tokens):
    path = str(tokens[0])
    windows = _all(TokenShards(path, 64, seed=1))
    ranks = [_all(TokenShards(path, 64, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert ranks == [windows[r::3] for r in range(3)]
    assert [len(TokenShards(path, 64, seed=1, rank=r, world_size=3)) for r in range(3)] == list(map(len, ranks))
    # DataLoader-style workers take whole batches in turn; interleaving them gives the rank's sequence.
    for workers, batch in ((2, 1), (3, 4)):
        parts = [_all(TokenShards(path, 64, seed=1, rank=1, world_size=3, batch_size=batch, num_workers=workers,
                                  worker_id=j)) for j in range(workers)]
        assert _round_robin(parts, batch) == ranks[1]


def _round_robin(parts: list[list], batch: int) -> list:
    """What a DataLoader does: one batch from each worker in turn, skipping exhausted workers."""
    batches = [[p[i:i + batch] for i in range(0, len(p), batch)] for p in parts]
    out = []
    for i in range(max(map(len, batches))):
        for worker in batches:
            if i < len(worker):
                out.extend(worker[i])
    return out


def test_resume_mid_epoch_with_any_number_of_workers(tokens):
    path = str(tokens[0])
    expected = _all(TokenShards(path, 32, seed=5, rank=0, world_size=2))
    ds = TokenShards(path, 32, seed=5, rank=0, world_size=2)
    first = []
    for window in ds:
        first.append(window.tolist())
        if len(first) == 10:
            break
    resumed = TokenShards(path, 32, seed=5, rank=0, world_size=2)
    resumed.load_state_dict(ds.state_dict())
    assert first + _all(resumed) == expected
    for workers, batch in ((1, 1), (3, 2)):  # the trainer says how many samples it consumed
        parts = []
        for j in range(workers):
            ds_j = TokenShards(path, 32, seed=5, rank=0, world_size=2, batch_size=batch, num_workers=workers, worker_id=j)
            ds_j.load_state_dict(ds.state_dict(consumed=10))
            parts.append(_all(ds_j))
        assert _round_robin(parts, batch) == expected[10:]


def test_resume_skips_whole_shards_unread(tokens, tmp_path):
    import shutil

    tokens_dir, manifest, _ = tokens
    copy = tmp_path / "tokens"
    shutil.copytree(tokens_dir, copy)
    expected = _all(TokenShards(str(copy), 16, seed=0))
    first_shard = TokenShards(str(copy), 16, seed=0).shard_order(0)[0]
    later = first_shard["tokens"] // 16 + 5  # a window in the second shard of the epoch
    (copy / first_shard["file"]).unlink()
    ds = TokenShards(str(copy), 16, seed=0)
    ds.load_state_dict({**ds.state_dict(), "samples_seen": later})
    assert _all(ds) == expected[later:]


def test_state_from_another_layout_is_refused(tokens):
    ds = TokenShards(str(tokens[0]), 32, seed=5, rank=0, world_size=2)
    with pytest.raises(ValueError, match="rank/world_size/seq_len"):
        TokenShards(str(tokens[0]), 64, seed=5, rank=0, world_size=2).load_state_dict(ds.state_dict())


def test_next_pass_is_the_next_epoch(tokens):
    ds = TokenShards(str(tokens[0]), 32, seed=5)
    epoch0, epoch1 = _all(ds), _all(ds)
    assert ds.epoch == 2 and len(epoch0) == len(epoch1) and epoch0 != epoch1


def test_importing_shards_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, pipeline.tokens.shards; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_torch_dataloader_with_workers_and_resume(tokens):
    torch = pytest.importorskip("torch")
    path = str(tokens[0])
    assert issubclass(TokenShards, torch.utils.data.IterableDataset) and issubclass(TokenShards, PlainTokenShards)
    expected = _all(TokenShards(path, 32, seed=5))
    loader = torch.utils.data.DataLoader(TokenShards(path, 32, seed=5, batch_size=4), batch_size=4, num_workers=2)
    batches = list(loader)
    assert [row.tolist() for b in batches for row in b] == expected and tuple(batches[0].shape) == (4, 33)
    ds = TokenShards(path, 32, seed=5, batch_size=4)
    ds.load_state_dict(ds.state_dict(consumed=12))
    resumed = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)  # another worker count
    assert [row.tolist() for b in resumed for row in b] == expected[12:]


# ---------------------------------------------------------------- special-token strings in page text

EOT = "<|endoftext|>"
STAGE_SPECIALS = [EOT, "<|pad|>", "<|im_start|>"]
FORMS = STAGE_SPECIALS + [EOT + EOT, "<|endoftext|", "|endoftext|>", f" {EOT}\n", f"x{EOT}y", "<<|pad|>>"]


def _with_special_strings(texts: list[str]) -> list[str]:
    """Each text with a special-token string (or a near form) at its start, end and a random place."""
    rng = random.Random(0)
    out = []
    for i, text in enumerate(texts):
        form, at = FORMS[i % len(FORMS)], rng.randrange(len(text) + 1)
        out.append([form + text, text[:at] + form + text[at:], text + form][i % 3])
    return out + FORMS


def _encode_and_write(tmp_path, texts: list[str]) -> None:
    """Curated file -> encode_file (the tokenize stage's task) -> write_shard; every row checked."""
    from pipeline.stages.encode import encode_file
    from pipeline.tokens.tokenizer import Tokenizer, train_bpe_from_texts

    vocab, merges = train_bpe_from_texts(texts, 600, STAGE_SPECIALS)
    tok = Tokenizer(vocab, merges, STAGE_SPECIALS)
    eot_id, specials = tok.special_ids[EOT], set(tok.special_ids.values())
    curated = str(tmp_path / "curated.parquet")
    storage.write_parquet(pa.table({"doc_id": [f"d{i}" for i in range(len(texts))], "url": ["u"] * len(texts),
                                    "warc_file": ["w.warc.gz"] * len(texts), "text": texts}), curated)
    parts = [str(tmp_path / ".parts/p.parquet")]
    counts = encode_file(curated, parts[0], tok, eot_id, seed=3, num_shards=2, opts={})
    assert counts["docs"] == len(texts) and counts["special_text_docs"] == sum(
        any(s in t for s in STAGE_SPECIALS) for t in texts)
    rows = []
    for k in range(2):
        write_shard(parts, k, len(tok.vocab), str(tmp_path / shard_name(k)))
        rows += storage.read_parquet(str(tmp_path / shard_name(k))).to_pylist()
    by_id = dict(zip((f"d{i}" for i in range(len(texts))), texts))
    assert len(rows) == len(texts)
    for row in rows:
        ids = row["input_ids"]
        assert ids[-1] == eot_id and not specials & set(ids[:-1]), row["doc_id"]  # one special id, at the end
        assert tok.decode(ids[:-1]) == by_id[row["doc_id"]]


def test_stage_rows_have_one_end_of_text_whatever_the_text_holds(tmp_path):
    words = ["the", "model", "prints", "token", "end", "of", "text", "when", "it", "stops", "über", "東京", "42"]
    rng = random.Random(1)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(40)]
    _encode_and_write(tmp_path, _with_special_strings(texts))


def test_stage_rows_of_real_pages_with_special_strings(tmp_path, shared_data):
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        pages = [json.loads(line)["text"] for line in fh][:80]
    _encode_and_write(tmp_path, _with_special_strings(pages))


def test_manifest_is_plain_json(tokens):
    tokens_dir, manifest, _ = tokens
    assert json.loads((tokens_dir / "manifest.json").read_text()) == manifest
    assert {"schema_version", "vocab_size", "dtype", "special_tokens", "eot_id", "shards"} <= set(manifest)
