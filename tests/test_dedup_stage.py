"""The Ray dedup stage: exact + near + boilerplate lines, partition-independent, chain-safe, resumable."""
from __future__ import annotations

import gzip
import json
import random

import duckdb
import pyarrow as pa
import pytest

from filters import Document
from filters.dedup import MinHashFilter, exact_jaccard, shingle_hashes
from pipeline import storage
from pipeline.annotate import BASE_FIELDS
from pipeline.config import parse_config
from pipeline.dedup import run_dedup

pytestmark = pytest.mark.slow
NUM_PERM = 256


def _edit(text: str, fraction: float, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    docs = [json.loads(line)["text"] for line in gzip.open(path, "rt")]
    return [d for d in docs if 3000 < len(d) < 15000]


def _write_docs(out, stem: str, rows: list[tuple[str, str, str]]) -> str:
    """rows: (doc_id, url, text) -> a documents/<stem>.parquet like the annotate stage writes."""
    f = MinHashFilter({"num_perm": NUM_PERM})
    cols: dict[str, list] = {fld.name: [] for fld in BASE_FIELDS}
    cols.update({"minhash": [], "text_hash": []})
    for doc_id, url, text in rows:
        doc = Document(doc_id=doc_id, text=text, url=url)
        f.annotate(doc)
        for name, value in (("doc_id", doc_id), ("url", url), ("warc_file", f"{stem}.warc.gz"),
                            ("warc_record_id", doc_id), ("warc_date", ""), ("content_type", "text/html"),
                            ("text", text), ("minhash", doc.signals["minhash"]), ("text_hash", doc.signals["text_hash"])):
            cols[name].append(value)
    schema = pa.schema(list(BASE_FIELDS) + f.signal_schema())
    path = storage.join(str(out), "documents", f"{stem}.parquet")
    storage.write_parquet(pa.table(cols, schema=schema), path)
    return path


def _cfg(out, partitions: int = 2, verify: bool = True, threshold: float = 0.8):
    return parse_config({
        "input": {"paths": ["unused"]}, "filters": {"minhash": {"num_perm": NUM_PERM}},
        "dedup": {"line": {"enabled": True, "max_repeats": 2, "min_line_chars": 10},
                  "near": {"threshold": threshold, "partitions": partitions, "verify": verify}},
        "output": {"path": str(out)},
    })


@pytest.fixture(scope="module")
def corpus(texts, tmp_path_factory):
    """Three files: originals, an exact copy across files, near-duplicates, far variants, boilerplate."""
    base = tmp_path_factory.mktemp("corpus")
    footer = "\nSubscribe to the Millbrook newsletter for weekly updates"
    a = [(f"a{i}", f"https://a.example/{i}", t + footer) for i, t in enumerate(texts[:12])]
    b = [("b0", "https://mirror.example/0", texts[0] + footer),                # exact copy of a0
         ("b1", "https://b.example/1", _edit(texts[1], 0.005, 1) + footer),    # near copy of a1
         ("b2", "https://b.example/2", _edit(texts[2], 0.30, 2) + footer)]     # far variant of a2
    c = [("c3", "https://c.example/3", "\n".join(reversed(texts[3].split("\n"))) + footer)]  # reordered a3
    files = [_write_docs(base, "a", a), _write_docs(base, "b", b), _write_docs(base, "c", c)]
    return base, files


def _survivors(out) -> set[str]:
    return {r[0] for r in duckdb.sql(f"select doc_id from '{out}/curated/*.parquet'").fetchall()}


@pytest.mark.parametrize("partitions", [1, 4])
def test_exact_near_and_lines_removed(corpus, ray_session, tmp_path, partitions):
    base, files = corpus
    out = tmp_path / "out"
    stats = run_dedup(_cfg(out, partitions), str(out), files)
    survivors = _survivors(out)
    assert "b2" in survivors                      # 30% edited: far below the threshold
    assert not ({"a0", "b0"} <= survivors)        # exact copies: one survives
    assert not ({"a1", "b1"} <= survivors)        # near copy: one survives
    assert stats["removed_by_reason"]["dedup:exact"] == 1
    assert stats["removed_by_reason"]["dedup:near"] >= 1
    assert stats["docs_in"] == 16 and stats["docs_out"] == len(survivors)
    assert stats["docs_in"] - stats["docs_out"] == sum(stats["removed_by_reason"].values())
    # The footer is in every document: boilerplate, removed from all survivors.
    texts = [r[0] for r in duckdb.sql(f"select text from '{out}/curated/*.parquet'").fetchall()]
    assert stats["boilerplate_lines"] >= 1 and not any("Millbrook newsletter" in t for t in texts)
    removed = duckdb.sql(f"select doc_id, reason, survivor_id from '{out}/dedup/removed.parquet'").fetchall()
    assert {r[1] for r in removed} <= {"dedup:exact", "dedup:near", "dedup:empty_after_line_dedup"}
    assert all(r[2] in survivors for r in removed if r[1] != "dedup:empty_after_line_dedup")
    sample = [json.loads(line) for line in open(out / "dedup/clusters.jsonl")]
    assert sample and all(m["url"].startswith("https://") for c in sample for m in c["removed"])


def test_same_survivors_with_one_and_four_partitions(corpus, ray_session, tmp_path):
    base, files = corpus
    run_dedup(_cfg(tmp_path / "p1", 1), str(tmp_path / "p1"), files)
    run_dedup(_cfg(tmp_path / "p4", 4), str(tmp_path / "p4"), files)
    assert _survivors(tmp_path / "p1") == _survivors(tmp_path / "p4")


def test_chain_does_not_merge_far_ends(texts, ray_session, tmp_path):
    """A~B and B~C above the threshold, A~C below: with verify on, A and C both survive."""
    a = texts[20]
    b = _edit(a, 0.02, 1)
    c = _edit(b, 0.02, 2)
    sets = {name: set(shingle_hashes(text).tolist()) for name, text in (("A", a), ("B", b), ("C", c))}
    ab, bc, ac = (exact_jaccard(sets[x], sets[y]) for x, y in (("A", "B"), ("B", "C"), ("A", "C")))
    threshold = (max(ac, 0) + min(ab, bc)) / 2
    assert ac < threshold < min(ab, bc)  # the setup really is a chain
    files = [_write_docs(tmp_path, "chain", [("A", "u/A", a), ("B", "u/B", b), ("C", "u/C", c)])]
    for verify, expected in ((True, {"A", "C"}), (False, {"A"})):
        out = tmp_path / f"verify-{verify}"
        cfg = _cfg(out, threshold=round(threshold, 3), verify=verify)
        cfg.dedup.line.enabled = False
        cfg.dedup.near.survivor = ["doc_id"]  # A ranks first: the chain would run A -> B -> C
        run_dedup(cfg, str(out), files)
        assert _survivors(out) == expected, verify


def test_resume_returns_stored_stats(corpus, ray_session, tmp_path):
    base, files = corpus
    out = tmp_path / "resume"
    first = run_dedup(_cfg(out), str(out), files)
    (out / "curated").rename(out / "curated-moved")  # a rerun must not redo the stage
    again = run_dedup(_cfg(out), str(out), files)
    assert again == first and not (out / "curated").exists()
