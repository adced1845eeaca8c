"""Dedup primitives and the file-level APIs, on real text from ../shared/data."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash

from filters import Document
from filters.dedup import (MinHasher, MinHashFilter, bucket_pairs, cluster, exact_jaccard, exact_line_dedup,
                           lsh_params, minhash_dedup, normalize_text, shingle_hash32, shingle_hashes, shingles,
                           signature_jaccard, text_hash)


@pytest.fixture(scope="module")
def cc_docs(shared_data) -> list[str]:
    path = shared_data / "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    docs = [json.loads(line)["text"] for line in gzip.open(path, "rt")]
    distinct: list[str] = []  # real CC text has its own near-duplicates: keep pairwise-distinct docs
    for doc in (d for d in docs if 2000 < len(d) < 20000):
        if all(exact_jaccard(shingle_hashes(doc), shingle_hashes(o)) < 0.5 for o in distinct):
            distinct.append(doc)
        if len(distinct) == 40:
            break
    return distinct


def edit_words(text: str, fraction: float, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = f"edited{rng.randrange(10**6)}"
    return " ".join(words)


def test_normalize_text():
    assert normalize_text("Héllo,  WÖRLD!\n\tIt's a  naïve café.") == "hello world its a naive cafe"
    assert normalize_text("") == ""
    assert text_hash("Hello, world!") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello there world")


def test_signature_equals_datasketch(cc_docs):
    hasher = MinHasher(num_perm=128, seed=7, ngram=5)
    for text in cc_docs[:10]:
        reference = MinHash(num_perm=128, seed=7, hashfunc=shingle_hash32)
        reference.update_batch([s.encode() for s in shingles(text)])
        ours = hasher.signature(text)
        assert np.array_equal(reference.hashvalues, ours)
        lean = LeanMinHash(seed=7, hashvalues=ours, scheme="affine32")
        assert lean.jaccard(LeanMinHash(reference)) == 1.0


def test_signature_estimates_jaccard(cc_docs):
    hasher = MinHasher(num_perm=256)
    for i, text in enumerate(cc_docs[:10]):
        variant = edit_words(text, 0.03, i)
        truth = exact_jaccard(shingle_hashes(text), shingle_hashes(variant))
        estimate = signature_jaccard(hasher.signature(text), hasher.signature(variant))
        assert abs(estimate - truth) < 0.12, (truth, estimate)


def test_filter_signals_and_edge_cases():
    f = MinHashFilter({"num_perm": 64})
    for text in ["", "   ", "one", "x" * 10_000_000, "mixed English, Ελληνικά, 中文 \udcff surrogate"]:
        doc = Document(doc_id="d", text=text)
        f.annotate(doc)
        assert len(doc.signals["minhash"]) == 64
        assert isinstance(doc.signals["text_hash"], int)
        assert f.decide(doc.signals) is None
    assert [fld.name for fld in f.signal_schema()] == ["minhash", "text_hash"]


def test_lsh_params_and_buckets():
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128 and bands > 1
    keys = np.array([5, 5, 5, 9, 9, 3], dtype=np.uint64)
    ids = np.array([10, 11, 12, 20, 21, 30])
    pairs = bucket_pairs(keys, ids)
    assert pairs.tolist() == [[10, 11], [10, 12], [20, 21]]  # a star per bucket, not all pairs


def test_cluster_refuses_chains():
    # A~B and B~C are similar, A and C are not: A and C must not end in one cluster.
    similar_pairs = {(0, 1), (1, 2)}

    def similar(i, j):
        return (min(i, j), max(i, j)) in similar_pairs

    survivor = cluster(3, np.array([[0, 1], [1, 2]]), np.array([0, 1, 2]), similar)
    assert survivor.tolist() == [0, 0, 2]
    # Without the check (everything similar) the component merges.
    assert cluster(3, np.array([[0, 1], [1, 2]]), np.array([0, 1, 2]), lambda i, j: True).tolist() == [0, 0, 0]


def test_exact_line_dedup(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Cookie policy\nunique line in a\nshared line\n")
    b.write_text("shared line\nCookie policy\nonly in b\nonly in b\n")
    stats = exact_line_dedup([a, b], tmp_path / "out")
    assert (tmp_path / "out/a.txt").read_text() == "unique line in a\n"
    assert (tmp_path / "out/b.txt").read_text() == ""
    assert stats == {"files": 2, "lines_in": 7, "lines_out": 1}


def test_minhash_dedup_real_near_duplicates(cc_docs, tmp_path):
    """Edits, inserted boilerplate and reordered paragraphs: removed at/above 0.8, kept below."""
    rng = random.Random(0)
    files, expect_removed, expect_kept = [], [], []
    for i, text in enumerate(cc_docs[:20]):
        files.append(("orig", i, text))
        paragraphs = text.split("\n")
        rng.shuffle(paragraphs)
        close = [edit_words(text, 0.01, i),
                 text + "\nSubscribe to our newsletter. Privacy policy. Terms of use.",
                 "\n".join(paragraphs)]
        far = edit_words(text, 0.25, i + 100)
        for kind, variant in (("close", close[i % 3]), ("far", far)):
            files.append((kind, i, variant))
    paths = []
    for n, (kind, i, text) in enumerate(files):
        path = tmp_path / "in" / f"{n:03d}-{kind}-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        paths.append(path)
        truth = exact_jaccard(shingle_hashes(files[[f[1] for f in files].index(i)][2]), shingle_hashes(text))
        if kind == "close" and truth >= 0.85:
            expect_removed.append(path.name)
        if kind == "far" and truth < 0.75:
            expect_kept.append(path.name)
    stats = minhash_dedup(paths, tmp_path / "out", num_hashes=128, num_bands=16, ngrams=5, jaccard_threshold=0.8)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert len(expect_removed) >= 12 and len(expect_kept) >= 15  # the test really covers both sides
    assert not (set(expect_removed) & written)
    assert set(expect_kept) <= written
    assert all(p.name in written for p in paths if "-orig-" in p.name)
    assert stats["removed"] == len(paths) - len(written)


def test_minhash_dedup_validates_bands(tmp_path):
    with pytest.raises(ValueError, match="multiple"):
        minhash_dedup([], tmp_path, num_hashes=100, num_bands=7, ngrams=5, jaccard_threshold=0.8)
