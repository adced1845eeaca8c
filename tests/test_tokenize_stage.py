"""The tokenize stage on Ray: tokenizer trained on kept text and saved with its sha256, documents
encoded into shards + manifest, resumable, layout independent of file order, bad rows counted,
special-token strings in page text kept as text (one end-of-text id per row, at its end)."""
from __future__ import annotations

import hashlib
import json
import random

import pyarrow as pa
import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.stages.encode import run_tokenize
from pipeline.tokens.tokenizer import Tokenizer

pytestmark = pytest.mark.slow
EOT = "<|endoftext|>"
SYLLABLES = ["ka", "to", "re", "mi", "sun", "ber", "ü", "ße", "го", "род", "да", "東", "京", "デ", "タ"]
EXTRAS = ["42", "3.5%", "we're", "isn't", "e-mail", "(note)", "—", "🙂"]


def _doc(rng: random.Random) -> str:
    """Lines of pseudo-words in three scripts, numbers and punctuation."""
    def word() -> str:
        if rng.random() < 0.1:
            return rng.choice(EXTRAS)
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
    lines = [" ".join(word() for _ in range(rng.randint(3, 15))) for _ in range(rng.randint(2, 12))]
    return "\n".join(lines)


def _curated(directory, rng: random.Random) -> tuple[list[str], dict[str, str]]:
    """Three curated files (the dedup stage's columns that tokenize reads, plus one it ignores)."""
    files, texts = [], {}
    for f in range(3):
        rows = [{"doc_id": f"f{f}-{i:03d}", "url": f"https://site{f}.example/{i}", "warc_file": f"crawl-{f}.warc.gz",
                 "text": _doc(rng), "lines_removed": 0} for i in range(60)]
        texts.update({r["doc_id"]: r["text"] for r in rows})
        path = str(directory / "curated" / f"crawl-{f}.parquet")
        storage.write_parquet(pa.Table.from_pylist(rows), path)
        files.append(path)
    return files, texts


def _cfg(out, **tokenizer):
    return parse_config({"input": {"paths": ["unused"]}, "output": {"path": str(out)},
                         "tokenizer": {"vocab_size": 600, **tokenizer}, "shards": {"target_tokens": 4_000, "seed": 3}})


@pytest.fixture(scope="module")
def stage(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    files, texts = _curated(out, random.Random(0))
    cfg = _cfg(out)
    return cfg, out, files, texts, run_tokenize(cfg, str(out), files)


def test_tokenizer_saved_with_its_sha256(stage):
    _, out, _, _, manifest = stage
    tok_dir = out / "tokenizer"
    info = json.loads((tok_dir / "tokenizer.json").read_text())
    digest = hashlib.sha256((tok_dir / "vocab.json").read_bytes() + (tok_dir / "merges.txt").read_bytes()).hexdigest()
    assert info["sha256"] == digest == manifest["tokenizer_sha256"]
    assert info["vocab_size"] == manifest["vocab_size"] == 600 and info["merges"] == 600 - 257
    assert info["trained_on_docs"] == 180 and info["fast_path"] is True


def test_shards_hold_every_document_encoded_with_end_of_text(stage):
    _, out, _, texts, manifest = stage
    tok = Tokenizer.from_files(out / "tokenizer/vocab.json", out / "tokenizer/merges.txt", [EOT])
    assert manifest["eot_id"] == tok.special_ids[EOT] and manifest["dtype"] == "uint16"
    assert manifest["total_docs"] == len(texts) and manifest["skipped_docs"] == 0
    assert 3 <= len(manifest["shards"]) == len(list((out / "tokens").glob("shard-*.parquet")))
    table = pa.concat_tables([storage.read_parquet(str(out / "tokens" / s["file"])) for s in manifest["shards"]])
    assert table.schema.field("input_ids").type == pa.list_(pa.uint16())
    for row in table.to_pylist():
        assert row["input_ids"][-1] == manifest["eot_id"] and row["num_tokens"] == len(row["input_ids"])
        assert tok.decode(row["input_ids"][:-1]) == texts[row["doc_id"]]
        assert row["source"] == f"crawl-{row['doc_id'][1]}.warc.gz" and row["url"].startswith("https://site")
    assert manifest["total_tokens"] == sum(table.column("num_tokens").to_pylist())
    assert not (out / "tokens/.parts").exists()


def test_rerun_returns_the_stored_manifest(stage):
    cfg, out, files, _, manifest = stage
    assert run_tokenize(cfg, str(out), files) == manifest


def test_layout_independent_of_file_order_and_tokenizer_reloadable(stage, tmp_path):
    cfg, out, files, _, manifest = stage
    other = tmp_path / "other"
    again = run_tokenize(_cfg(other, path=str(out / "tokenizer")), str(other), list(reversed(files)))
    assert again["tokenizer_sha256"] == manifest["tokenizer_sha256"] and again["tokenizer"]["loaded_from"]
    assert [(s["file"], s["docs"], s["tokens"]) for s in again["shards"]] == \
        [(s["file"], s["docs"], s["tokens"]) for s in manifest["shards"]]
    for shard in manifest["shards"]:
        assert storage.read_parquet(str(other / "tokens" / shard["file"])).equals(
            storage.read_parquet(str(out / "tokens" / shard["file"])))


def test_new_config_replaces_old_shards_and_bad_rows_are_counted(ray_session, tmp_path):
    files, texts = _curated(tmp_path, random.Random(1))
    rows = [{"doc_id": None, "url": "u", "warc_file": "w", "text": "orphan", "lines_removed": 0},
            {"doc_id": "no-text", "url": "u", "warc_file": "w", "text": None, "lines_removed": 0},
            {"doc_id": "empty", "url": "u", "warc_file": "w", "text": "", "lines_removed": 0}]
    storage.write_parquet(pa.Table.from_pylist(rows), str(tmp_path / "curated/bad.parquet"))
    files.append(str(tmp_path / "curated/bad.parquet"))
    many = run_tokenize(_cfg(tmp_path), str(tmp_path), files)
    assert many["skipped_docs"] == 2 and many["total_docs"] == len(texts) + 1  # "" is a document: [eot]
    few = run_tokenize(parse_config({**_cfg(tmp_path).dump(), "shards": {"target_tokens": 10**9, "seed": 3}}),
                       str(tmp_path), files)
    assert len(few["shards"]) == 1 == len(list((tmp_path / "tokens").glob("shard-*.parquet")))


def test_special_token_strings_in_pages_stay_text(ray_session, tmp_path):
    specials = [EOT, "<|pad|>"]
    rng = random.Random(2)
    texts = {f"llm-{i:03d}": _doc(rng) for i in range(120)}
    forms = specials + [EOT + EOT, "<|endoftext|", f"see {EOT} here", "<<|pad|>>"]
    injected = {doc_id: text + " " + forms[i // 2 % len(forms)] if i % 2 else text
                for i, (doc_id, text) in enumerate(sorted(texts.items()))}
    rows = [{"doc_id": doc_id, "url": "https://llm.example/", "warc_file": "llm.warc.gz", "text": text}
            for doc_id, text in injected.items()]
    storage.write_parquet(pa.Table.from_pylist(rows), str(tmp_path / "curated/llm.parquet"))
    manifest = run_tokenize(_cfg(tmp_path, special_tokens=specials), str(tmp_path), [str(tmp_path / "curated/llm.parquet")])
    tok = Tokenizer.from_files(tmp_path / "tokenizer/vocab.json", tmp_path / "tokenizer/merges.txt", specials)
    assert manifest["special_tokens"] == tok.special_ids and manifest["eot_id"] == tok.special_ids[EOT]
    table = pa.concat_tables([storage.read_parquet(str(tmp_path / "tokens" / s["file"])) for s in manifest["shards"]])
    assert table.num_rows == len(injected)
    for row in table.to_pylist():
        ids = row["input_ids"]
        assert ids[-1] == manifest["eot_id"] and not set(tok.special_ids.values()) & set(ids[:-1])
        assert tok.decode(ids[:-1]) == injected[row["doc_id"]]
    assert manifest["special_text_docs"] == sum(any(s in t for s in specials) for t in injected.values()) == 50


def test_missing_column_names_the_file(ray_session, tmp_path):
    path = str(tmp_path / "curated/broken.parquet")
    storage.write_parquet(pa.table({"doc_id": ["a"], "text": ["hello world"]}), path)
    with pytest.raises(ValueError, match=r"broken.parquet.*\['url', 'warc_file'\]"):
        run_tokenize(_cfg(tmp_path), str(tmp_path), [path])


def test_config_refuses_an_end_of_text_that_is_not_special():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="end_of_text"):
        parse_config({"input": {"paths": ["x"]}, "tokenizer": {"special_tokens": ["<s>"]}})
    with pytest.raises(ConfigError, match="distinct"):
        parse_config({"input": {"paths": ["x"]}, "tokenizer": {"special_tokens": [EOT, EOT]}})
