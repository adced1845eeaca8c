"""bench/corpus.py writes what its truth says, and bench/bench_scale.py scores outcomes right."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bench import bench_scale, corpus
from filters.dedup import MinHasher, exact_jaccard, shingle_hashes, text_hash

NUM_PERM = 128


def load(path) -> tuple[pa.Table, pa.Table]:
    docs = pq.read_table(path / "documents")
    truth = pq.read_table(path / "truth.parquet")
    return docs, truth


def by_cluster(truth: pa.Table) -> dict[int, list[dict]]:
    clusters: dict[int, list[dict]] = {}
    for row in truth.to_pylist():
        if row["cluster_id"] is not None:
            clusters.setdefault(row["cluster_id"], []).append(row)
    return clusters


@pytest.fixture(scope="module")
def signature_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("sig")
    plan = corpus.generate(4000, "signature", out, 3, seed=7, exact_rate=0.05, near_rate=0.15)
    return out, plan


def test_signature_corpus_matches_its_truth(signature_corpus):
    out, plan = signature_corpus
    docs, truth = load(out)
    assert docs.num_rows == truth.num_rows == 4000
    assert sorted(docs.column("doc_id").to_pylist()) == sorted(truth.column("doc_id").to_pylist())
    assert docs.schema.field("minhash").type == pa.list_(pa.uint32(), NUM_PERM)
    assert all(docs.column("text").to_pylist())  # never empty
    row = {d: i for i, d in enumerate(docs.column("doc_id").to_pylist())}
    sigs = np.asarray(docs.column("minhash").combine_chunks().flatten()).reshape(-1, NUM_PERM)
    hashes = docs.column("text_hash").to_numpy()
    texts = docs.column("text").to_pylist()
    kinds = pc.value_counts(truth.column("kind")).to_pylist()
    counts = {k["values"]: k["counts"] for k in kinds}
    assert counts["exact"] >= 0.05 * 4000 and counts["near"] >= 0.15 * 4000
    # one distinct text hash (and text) per distinct document: exact copies share their base's
    assert len(np.unique(hashes)) == len(set(texts)) == 4000 - counts["exact"]
    errors = []
    for members in by_cluster(truth).values():
        base = [m for m in members if m["kind"] == "base"]
        assert len(base) == 1 and len(members) >= 2
        b = row[base[0]["doc_id"]]
        planted = []
        for m in members:
            i = row[m["doc_id"]]
            if m["kind"] == "exact":
                assert hashes[i] == hashes[b] and texts[i] == texts[b] and (sigs[i] == sigs[b]).all()
            elif m["kind"] == "near":
                assert hashes[i] != hashes[b] and 0.8 <= m["planted_jaccard"] < 1
                errors.append((sigs[i] == sigs[b]).mean() - m["planted_jaccard"])
                planted.append(m["planted_jaccard"])
        # the model minimum over pairs: J_i to the base, J_i * J_j between two copies
        planted.sort()
        expected = 1.0 if not planted else planted[0] * (planted[1] if len(planted) > 1 else 1.0)
        assert members[0]["cluster_min_pairwise_jaccard"] == pytest.approx(expected)
    # P(position kept) = J: the match fraction is J on average, with binomial spread
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.005 and errors.std() < 0.04
    uniques = [row[d] for d, k in zip(truth.column("doc_id").to_pylist(), truth.column("kind").to_pylist())
               if k == "unique"][:200]
    assert max((sigs[a] == sigs[c]).mean() for a, c in zip(uniques[::2], uniques[1::2])) < 0.05


def test_signature_corpus_does_not_depend_on_file_count(signature_corpus, tmp_path):
    out, _ = signature_corpus
    corpus.generate(4000, "signature", tmp_path, 1, seed=7, exact_rate=0.05, near_rate=0.15)
    a = pq.read_table(out / "documents").sort_by("doc_id")
    b = pq.read_table(tmp_path / "documents").drop_columns(["warc_file"]).sort_by("doc_id")
    assert a.drop_columns(["warc_file"]).equals(b)


def test_text_corpus_matches_its_truth(shared_data, tmp_path):
    corpus.generate(400, "text", tmp_path, 2, seed=3, exact_rate=0.1, near_rate=0.2, shared=shared_data)
    docs, truth = load(tmp_path)
    hasher = MinHasher(NUM_PERM)
    row = {d: i for i, d in enumerate(docs.column("doc_id").to_pylist())}
    texts = docs.column("text").to_pylist()
    sigs = np.asarray(docs.column("minhash").combine_chunks().flatten()).reshape(-1, NUM_PERM)
    hashes = docs.column("text_hash").to_numpy()
    for i in range(0, len(texts), 7):  # what the minhash filter would store
        assert hashes[i] == text_hash(texts[i]) and (sigs[i] == hasher.signature(texts[i])).all()
    clusters = by_cluster(truth)
    assert {m["kind"] for ms in clusters.values() for m in ms} == {"base", "exact", "near"}
    for members in clusters.values():
        sets = [shingle_hashes(texts[row[m["doc_id"]]]) for m in members]
        base = next(i for i, m in enumerate(members) if m["kind"] == "base")
        for s, m in zip(sets, members):
            assert m["planted_jaccard"] == pytest.approx(exact_jaccard(sets[base], s))
            if m["kind"] == "exact":
                assert texts[row[m["doc_id"]]] == texts[row[members[base]["doc_id"]]]
            if m["kind"] == "near":  # never an exact duplicate of another member
                assert sum(hashes[row[o["doc_id"]]] == hashes[row[m["doc_id"]]] for o in members) == 1
        pairwise = min(exact_jaccard(a, b) for i, a in enumerate(sets) for b in sets[i + 1:])
        assert members[0]["cluster_min_pairwise_jaccard"] == pytest.approx(pairwise)
    unique = [texts[row[d]] for d, k in zip(truth.column("doc_id").to_pylist(), truth.column("kind").to_pylist())
              if k == "unique"][:40]
    sets = [shingle_hashes(t) for t in unique]
    assert max(exact_jaccard(a, b) for i, a in enumerate(sets) for b in sets[i + 1:]) < 0.3


def perfect_removals(truth: pa.Table) -> list[tuple[str, str]]:
    """Every member of every cluster at >= 0.8 removed in favour of its base."""
    out = []
    for members in by_cluster(truth).values():
        if members[0]["cluster_min_pairwise_jaccard"] >= bench_scale.THRESHOLD:
            base = next(m["doc_id"] for m in members if m["kind"] == "base")
            out += [(m["doc_id"], base) for m in members if m["doc_id"] != base]
    return out


def removed_table(pairs: list[tuple[str, str | None]]) -> pa.Table:
    return pa.table({"doc_id": pa.array([d for d, _ in pairs], pa.string()),
                     "survivor_id": pa.array([s for _, s in pairs], pa.string())})


def test_scorer_perfect_and_degraded(signature_corpus):
    out, _ = signature_corpus
    truth = pq.read_table(out / "truth.parquet")
    perfect = perfect_removals(truth)
    result = bench_scale.score(truth, removed_table(perfect))
    assert result["precision"] == result["recall"] == result["near_recall"] == 1.0 and result["false"] == 0
    assert all(b["recall"] == 1.0 for name, b in result["buckets"].items() if "chains" not in name)
    assert result["buckets"]["< 0.80 (chains, not counted)"]["recall"] == 0.0

    # a survivor other than the base is as good: which member survives is the stage's choice
    swapped = []
    for members in by_cluster(truth).values():
        if members[0]["cluster_min_pairwise_jaccard"] >= bench_scale.THRESHOLD:
            keep = members[-1]["doc_id"]
            swapped += [(m["doc_id"], keep) for m in members if m["doc_id"] != keep]
    assert bench_scale.score(truth, removed_table(swapped))["recall"] == 1.0

    uniques = [d for d, k in zip(truth.column("doc_id").to_pylist(), truth.column("kind").to_pylist())
               if k == "unique"]
    other_cluster = perfect[-1][1]
    degraded = perfect[::2] + [(uniques[0], uniques[1]), (uniques[2], None), (perfect[1][0], other_cluster)]
    result = bench_scale.score(truth, removed_table(degraded))
    assert result["false"] == 3 and result["precision"] == pytest.approx((len(degraded) - 3) / len(degraded))
    assert 0.4 < result["recall"] < 0.6


@pytest.mark.slow
def test_bench_scale_quick_runs_the_stage(shared_data, tmp_path):
    body = bench_scale.run(shared_data, tmp_path, quick=True, sizes=["2k"], text_sizes=["500"])
    assert "FAILED" not in body and "| signature | 2,000 |" in body and "| text | 500 |" in body
    for mode, docs in (("signature", 2000), ("text", 500)):
        result = json.loads((tmp_path / f"result-{mode}-{docs}.json").read_text())
        assert result["accounted"] and result["precision"] >= 0.99 and result["recall"] >= 0.9
