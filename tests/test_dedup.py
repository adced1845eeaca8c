"""Dedup primitives and the file-level APIs (no Ray), on real text from ../shared/data."""
from __future__ import annotations

import gzip
import json
import random
import unicodedata

import numpy as np
import pytest
import xxhash
from datasketch import LeanMinHash, MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import Document, filter_class
from filters.dedup import (MinHasher, MinHashFilter, bucket_pairs, candidate_probability, cluster,
                           distinct_line_keys, exact_jaccard, exact_line_dedup, exact_similar, lsh_params,
                           minhash_dedup, normalize_text, remove_lines, shingle_hash32, shingle_hashes, shingles,
                           signature_jaccard, signature_similar, text_hash)

CC_FILE = "quality/dolma-cc-text/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"


def distinct_real_docs(shared_data, count: int, min_chars: int = 2000, max_chars: int = 20000) -> list[str]:
    """Real CC documents that are pairwise far apart (CC text has its own near-duplicates)."""
    docs = [json.loads(line)["text"] for line in gzip.open(shared_data / CC_FILE, "rt")]
    chosen: list[str] = []
    sets: list[np.ndarray] = []
    for doc in (d for d in docs if min_chars < len(d) < max_chars):
        s = shingle_hashes(doc)
        if all(exact_jaccard(s, o) < 0.3 for o in sets):
            chosen.append(doc)
            sets.append(s)
        if len(chosen) == count:
            break
    return chosen


def edit_words(text: str, fraction: float, seed: int) -> str:
    """Replace a fraction of the words (keeps the line structure)."""
    rng = random.Random(seed)
    lines = [line.split(" ") for line in text.split("\n")]
    slots = [(i, j) for i, line in enumerate(lines) for j in range(len(line))]
    for i, j in rng.sample(slots, int(len(slots) * fraction)):
        lines[i][j] = f"edited{rng.randrange(10**6)}"
    return "\n".join(" ".join(line) for line in lines)


@pytest.fixture(scope="module")
def cc_docs(shared_data) -> list[str]:
    return distinct_real_docs(shared_data, 30)


def reference_normalize(text: str) -> str:
    """The normalization spelled out character by character."""
    text = unicodedata.normalize("NFD", text.lower())
    kept = "".join(ch for ch in text if ch.isalnum() or ch.isspace())
    return " ".join(kept.split())


def test_normalize_text():
    assert normalize_text("Héllo,  WÖRLD!\n\tIt's a  naïve café.") == "hello world its a naive cafe"
    assert normalize_text("") == normalize_text(" \n\t ") == normalize_text("!?") == ""
    assert text_hash("Hello, world!") == text_hash("  hello\n world ") == xxhash.xxh3_64_intdigest(b"hello world")
    assert text_hash("hello world") != text_hash("hello there world")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2FFFF), max_size=60))
def test_normalize_matches_reference(text):
    assert normalize_text(text) == reference_normalize(text)
    words = normalize_text(text).split(" ") if normalize_text(text) else []
    assert len(shingle_hashes(text, 2)) <= max(1, len(words))


def test_normalize_matches_reference_on_real_text(cc_docs):
    for text in cc_docs:
        assert normalize_text(text) == reference_normalize(text)
        assert text_hash(text) == xxhash.xxh3_64_intdigest(reference_normalize(text).encode())


def test_normalize_folds_every_code_point_as_the_reference():
    # Each code point of the fold table, inside a word and beside capital sigmas (whose lower
    # case depends on the neighbours, so those texts take str.lower first). Past the table code
    # points fold to themselves and count as word characters (U+30000 is a CJK ideograph).
    for code in list(range(0x30000)) + [0x30000, 0x3134A]:
        char = chr(code)
        for text in (f"a{char}b {char}", f"\u03a3{char}\u03a3 \u03a3{char}"):
            assert normalize_text(text) == reference_normalize(text), hex(code)


def test_normalize_matches_reference_on_many_languages(shared_data):
    import csv

    with (shared_data / "langid" / "tatoeba" / "tatoeba_long.tsv").open(encoding="utf-8", newline="") as handle:
        sentences = [row["text"] for row in csv.DictReader(handle, delimiter="\t")]
    assert len(sentences) > 400
    for text in sentences + [" ".join(sentences)]:
        assert normalize_text(text) == reference_normalize(text)
        assert text_hash(text) == xxhash.xxh3_64_intdigest(reference_normalize(text).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signature_equals_datasketch(cc_docs, scheme):
    """Same hash values as datasketch fed our shingles and shingle hash, both permutation schemes."""
    hasher = MinHasher(num_perm=128, seed=7, ngram=5, scheme=scheme)
    previous = None
    for text in cc_docs[:6] + ["", "one two"]:
        reference = MinHash(num_perm=128, seed=7, hashfunc=shingle_hash32, scheme=scheme)
        reference.update_batch([s.encode() for s in shingles(text)])
        ours = hasher.signature(text)
        assert np.array_equal(reference.hashvalues, ours)
        stored = LeanMinHash(seed=7, hashvalues=ours, scheme=scheme)  # built from a stored signature
        assert stored.jaccard(LeanMinHash(reference)) == 1.0
        if previous is not None:
            assert stored.jaccard(previous) == signature_jaccard(ours, previous.hashvalues)
        previous = LeanMinHash(reference)
    # datasketch's per-token update loop agrees too
    loop = MinHash(num_perm=128, seed=7, hashfunc=shingle_hash32, scheme=scheme)
    for s in shingles(cc_docs[0]):
        loop.update(s)
    assert np.array_equal(loop.hashvalues, hasher.signature(cc_docs[0]))


def test_signature_estimates_jaccard(cc_docs):
    hasher = MinHasher(num_perm=256)
    errors = []
    for i, text in enumerate(cc_docs[:12]):
        variant = edit_words(text, 0.03, i)
        truth = exact_jaccard(shingle_hashes(text), shingle_hashes(variant))
        errors.append(signature_jaccard(hasher.signature(text), hasher.signature(variant)) - truth)
    # standard error at J~0.8 with 256 permutations is ~0.025
    assert np.abs(errors).max() < 0.1 and abs(np.mean(errors)) < 0.03


def test_filter_signals_and_edge_cases():
    f = filter_class("minhash")({"num_perm": 64})
    assert isinstance(f, MinHashFilter)
    for text in ["", "   ", "one", "x" * 5_000_000, "mixed English, Ελληνικά, 中文 \udcff surrogate 𝔘"]:
        doc = Document(doc_id="d", text=text)
        f.annotate(doc)
        assert doc.signals["minhash"].dtype == np.uint32 and len(doc.signals["minhash"]) == 64
        assert doc.signals["text_hash"] == text_hash(text)
        assert np.array_equal(doc.signals["minhash"], MinHasher(64).signature(text))
        assert f.decide(doc.signals) is None
    assert [fld.name for fld in f.signal_schema()] == ["minhash", "text_hash"]
    with pytest.raises(ValueError):
        MinHashFilter({"scheme": "affine64"})


def test_lsh_params():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        for num_perm in (64, 128, 256):
            bands, rows = lsh_params(threshold, num_perm)
            assert bands * rows <= num_perm
            assert candidate_probability(threshold, bands, rows) >= 0.99
            # one more row per band would drop below the target (fewest false candidates)
            more = rows + 1
            assert candidate_probability(threshold, num_perm // more, more) < 0.99
    assert lsh_params(0.8, 128) == (21, 6)


def test_bucket_pairs_are_bounded():
    keys = np.array([5, 5, 5, 9, 9, 3, 5], dtype=np.uint64)
    ids = np.array([11, 10, 12, 20, 21, 30, 10])  # 10 sits in bucket 5 twice
    assert bucket_pairs(keys, ids).tolist() == [[10, 11], [10, 12], [11, 12], [20, 21]]  # small: all pairs
    assert bucket_pairs(keys, ids, hubs=1).tolist() == [[10, 11], [10, 12], [20, 21]]    # a star
    assert bucket_pairs(keys[:1], ids[:1]).shape == (0, 2)
    big = bucket_pairs(np.zeros(1000, np.uint64), np.arange(1000)[::-1].copy(), hubs=3)
    assert len(big) == 999 + 998 + 997 and set(big[:, 0].tolist()) == {0, 1, 2}  # ~hubs x k, not k^2


def test_cluster_refuses_chains():
    """A~B and B~C are similar, A and C are not: A and C never end in one cluster."""
    similar_pairs = {(0, 1), (1, 2)}

    def similar(center, others):
        return np.array([(min(center, o), max(center, o)) in similar_pairs for o in others])

    edges = np.array([[0, 1], [1, 2]])
    assert cluster(3, edges, np.array([0, 1, 2]), similar).tolist() == [0, 0, 2]
    # B ranked first takes both A and C: each is similar to B itself
    assert cluster(3, edges, np.array([1, 0, 2]), similar).tolist() == [1, 1, 1]
    # without the check the component merges
    assert cluster(3, edges, np.array([0, 1, 2]), lambda c, o: np.ones(len(o), bool)).tolist() == [0, 0, 0]
    assert cluster(4, np.zeros((0, 2), int), np.arange(4), similar).tolist() == [0, 1, 2, 3]


def test_similarity_functions_agree(cc_docs):
    texts = [cc_docs[0], edit_words(cc_docs[0], 0.01, 1), edit_words(cc_docs[0], 0.2, 2), cc_docs[1]]
    sets = [shingle_hashes(t) for t in texts]
    sigs = np.stack([MinHasher(256).signature(t) for t in texts])
    exact = exact_similar(sets, 0.8)(0, np.arange(1, 4))
    estimated = signature_similar(sigs, 0.8)(0, np.arange(1, 4))
    assert exact.tolist() == estimated.tolist() == [True, False, False]
    assert exact_jaccard(sets[0], sets[0]) == 1.0 and exact_jaccard(sets[0], sets[3]) < 0.3


def test_line_primitives():
    text = "Home | About\nreal content line\n  Home | About  \nok\n"
    drop = {distinct_line_keys("Home | About", 5)[0]}
    assert remove_lines(text, drop, 5) == ("real content line\nok\n", 2)
    assert remove_lines(text, set(), 5) == (text, 0)
    assert remove_lines("ok\nok", {distinct_line_keys("ok", 0)[0]}, 5) == ("ok\nok", 0)  # short lines stay
    assert len(distinct_line_keys(text, 5)) == 2 and distinct_line_keys(text, 100) == []


def test_exact_line_dedup(tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_text("Cookie policy\nunique line in a\nshared line\n")
    b.write_text("shared line\nCookie policy\nonly in b\nonly in b\nlast line of b")
    c.write_bytes(b"caf\xe9 latin-1 line\nlast line of b\n")  # not UTF-8: bytes kept as they are
    stats = exact_line_dedup([a, b, c], tmp_path / "out")
    assert (tmp_path / "out/a.txt").read_text() == "unique line in a\n"
    assert (tmp_path / "out/b.txt").read_text() == ""
    assert (tmp_path / "out/c.txt").read_bytes() == b"caf\xe9 latin-1 line\n"
    assert stats == {"files": 3, "lines_in": 10, "lines_out": 2}
    with pytest.raises(ValueError, match="distinct"):
        exact_line_dedup([a, a], tmp_path / "out2")


def test_minhash_dedup_real_near_duplicates(cc_docs, tmp_path):
    """Edits, inserted boilerplate and reordered paragraphs: removed at/above 0.8, kept below."""
    rng = random.Random(0)
    boilerplate = ("Subscribe to our newsletter for the latest news and offers.\n"
                   "Privacy policy | Terms of use | Cookie settings | Contact us")
    rows = []  # (file name, original index, text)
    for i, text in enumerate(cc_docs[:24]):
        paragraphs = text.split("\n")
        rng.shuffle(paragraphs)
        middle = len(text) // 2
        variants = {
            "edit": edit_words(text, rng.choice([0.005, 0.01, 0.02, 0.03, 0.05]), i),
            "boiler": text[:middle] + "\n" + boilerplate + "\n" + text[middle:],
            "reorder": "\n".join(paragraphs),
            "far": edit_words(text, 0.15, i + 100),
        }
        rows.append((f"{i:02d}-0-orig.txt", i, text))
        rows += [(f"{i:02d}-{k}-{kind}.txt", i, v) for k, (kind, v) in enumerate(variants.items(), 1)]
    (tmp_path / "in").mkdir()
    paths, truth = [], {}
    originals = {i: shingle_hashes(t) for name, i, t in rows if "orig" in name}
    for name, i, text in rows:
        (tmp_path / "in" / name).write_text(text)
        paths.append(tmp_path / "in" / name)
        truth[name] = exact_jaccard(originals[i], shingle_hashes(text))
    # 21 bands x 6 rows: lsh_params(0.8, 128), the pipeline's default
    stats = minhash_dedup(paths, tmp_path / "out", num_hashes=126, num_bands=21, ngrams=5, jaccard_threshold=0.8)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    above = [n for n, j in truth.items() if "orig" not in n and j >= 0.8]
    below = [n for n, j in truth.items() if j < 0.8]
    assert len(above) >= 40 and len(below) >= 20  # both sides really covered
    assert {n.split("-")[2] for n in above} >= {"edit.txt", "boiler.txt", "reorder.txt"}
    assert all(p.name in written for p in paths if "-orig" in p.name)
    assert not set(above) & written                   # every near-duplicate of an original removed
    assert set(below) <= written                       # nothing below the threshold removed
    assert stats["removed"] == len(paths) - len(written) == len(above)
    assert stats["files"] == len(paths) and stats["verified_pairs"] <= stats["candidate_pairs"]


def test_minhash_dedup_validates(tmp_path):
    with pytest.raises(ValueError, match="multiple"):
        minhash_dedup([], tmp_path, num_hashes=100, num_bands=7, ngrams=5, jaccard_threshold=0.8)
    (tmp_path / "x.txt").write_text("same text")
    with pytest.raises(ValueError, match="distinct"):
        minhash_dedup([tmp_path / "x.txt"] * 2, tmp_path / "o", num_hashes=8, num_bands=2, ngrams=5,
                      jaccard_threshold=0.8)
    assert minhash_dedup([], tmp_path / "empty", num_hashes=8, num_bands=2, ngrams=5,
                         jaccard_threshold=0.8)["files"] == 0
