"""The Ray dedup stage: exact + URL + near + boilerplate lines; partition-independent, chain-safe,
accounted, resumable. Documents are real CC text from ../shared/data."""
from __future__ import annotations

import json
import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters import Document
from filters.dedup import MinHashFilter, exact_jaccard, shingle_hashes
from pipeline import storage
from pipeline.config import parse_config
from pipeline.stages.annotate import BASE_FIELDS
from pipeline.stages.dedup import REMOVED_SCHEMA, run_dedup
from tests.test_dedup import distinct_real_docs, edit_words

pytestmark = pytest.mark.slow
NUM_PERM = 128
FOOTER = "Subscribe to the Millbrook newsletter for weekly updates"


def write_docs(out, stem: str, rows: list[tuple], *, quality: bool = False, minhash: bool = True) -> str:
    """rows: (doc_id, url, text[, quality_score]) -> documents/<stem>.parquet as the annotate stage
    writes it (base fields, then the minhash filter's signals)."""
    f = MinHashFilter({"num_perm": NUM_PERM})
    fields = list(BASE_FIELDS) + (f.signal_schema() if minhash else []) + \
        ([pa.field("quality_score", pa.float64())] if quality else [])
    cols: dict[str, list] = {fld.name: [] for fld in fields}
    for doc_id, url, text, *score in rows:
        doc = Document(doc_id=doc_id, text=text, url=url)
        f.annotate(doc)
        values = {"doc_id": doc_id, "url": url, "warc_file": f"{stem}.warc.gz", "warc_record_id": doc_id,
                  "warc_date": "", "content_type": "text/html", "text": text, "extract_fallback": False, **doc.signals,
                  "quality_score": score[0] if score else None}
        for name in cols:
            cols[name].append(values[name])
    path = storage.join(str(out), "documents", f"{stem}.parquet")
    storage.write_parquet(pa.table(cols, schema=pa.schema(fields)), path)
    return path


def make_cfg(out, partitions: int = 2, **near) -> object:
    return parse_config({
        "input": {"paths": ["unused"]}, "filters": {"minhash": {"num_perm": NUM_PERM}},
        "dedup": {"line": {"max_repeats": 3, "min_line_chars": 10},
                  "near": {"partitions": partitions, **near}},
        "output": {"path": str(out)},
    })


@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    return distinct_real_docs(shared_data, 24, min_chars=2500, max_chars=12000)


@pytest.fixture(scope="module")
def corpus(texts, tmp_path_factory):
    """Three documents files: originals with a shared footer line, an exact copy (other case and
    spacing) in another file, near copies (edit, inserted boilerplate, reordered paragraphs), a
    far variant, and a page made only of the footer."""
    base = tmp_path_factory.mktemp("corpus")
    a = [(f"a{i:02d}", f"https://a.example/{i}", t + "\n" + FOOTER) for i, t in enumerate(texts[:16])]
    paragraphs = texts[3].split("\n")
    third = len(paragraphs) // 3
    reordered = paragraphs[2 * third:] + paragraphs[third: 2 * third] + paragraphs[:third]
    # b00: texts[0] with other line breaks and punctuation, same length: the same normalized text
    b = [("b00", "https://mirror.example/0", texts[0].replace("\n", " ").replace(".", ",") + "\n" + FOOTER),
         ("b01", "https://b.example/1", edit_words(texts[1], 0.005, 1) + "\n" + FOOTER),
         ("b02", "https://b.example/2", edit_words(texts[2], 0.30, 2) + "\n" + FOOTER),
         ("b03", "https://b.example/3", "\n".join(reordered) + "\n" + FOOTER)]
    c = [("c04", "https://c.example/4", texts[4][:1000] + "\nRead more on our blog, free shipping!\n"
          + texts[4][1000:] + "\n" + FOOTER),
         ("c05", "https://c.example/5", FOOTER + "\n\n" + FOOTER)]
    files = [write_docs(base, "a", a), write_docs(base, "b", b), write_docs(base, "c", c)]
    jaccard = {name: exact_jaccard(shingle_hashes(texts[i]), shingle_hashes(text))
               for name, i, text in (("b01", 1, b[1][2]), ("b02", 2, b[2][2]), ("b03", 3, b[3][2]),
                                     ("c04", 4, c[0][2]))}
    assert min(jaccard["b01"], jaccard["b03"], jaccard["c04"]) >= 0.85 and jaccard["b02"] < 0.5
    return base, files, {doc_id: text for doc_id, _, text in a + b + c}


DUPLICATE_PAIRS = [("a00", "b00", "dedup:exact"), ("a01", "b01", "dedup:near"), ("a03", "b03", "dedup:near"),
                   ("a04", "c04", "dedup:near")]


def expected_removals(docs: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Default survivor policy without quality scores: the longer text, then the smaller doc_id."""
    removals: dict[str, tuple[str, str | None]] = {"c05": ("dedup:empty_after_line_dedup", None)}
    for x, y, reason in DUPLICATE_PAIRS:
        keep, drop = sorted((x, y), key=lambda d: (-len(docs[d]), d))
        removals[drop] = (reason, keep)
    return removals


def survivors(out) -> set[str]:
    return {r[0] for r in duckdb.sql(f"select doc_id from '{out}/curated/*.parquet'").fetchall()}


def removed_rows(out) -> list[tuple]:
    return duckdb.sql(f"select doc_id, reason, survivor_id from '{out}/dedup/removed.parquet' order by doc_id").fetchall()


@pytest.fixture(scope="module")
def runs(corpus, ray_session, tmp_path_factory):
    """The corpus deduplicated with 1 and with 4 partitions."""
    base, files, _ = corpus
    result = {}
    for partitions in (1, 4):
        out = tmp_path_factory.mktemp(f"p{partitions}")
        result[partitions] = (out, run_dedup(make_cfg(out, partitions), str(out), files))
    return result


def test_exact_near_and_lines_removed(runs, corpus):
    out, stats = runs[4]
    expected = expected_removals(corpus[2])
    assert expected["b00"] == ("dedup:exact", "a00")  # same length: the smaller doc_id wins
    assert survivors(out) == set(corpus[2]) - set(expected)  # b02 (30% edited, far below 0.8) kept
    assert {doc_id: (reason, survivor) for doc_id, reason, survivor in removed_rows(out)} == expected
    # the footer is in 22 documents (> max_repeats 3): removed from every survivor, counted per doc
    curated = duckdb.sql(f"select doc_id, text, lines_removed from '{out}/curated/*.parquet'").fetchall()
    assert all(FOOTER not in text and lines == 1 for _, text, lines in curated)
    assert stats["boilerplate_lines"] == 1 and stats["lines_removed"] == len(curated) + 2  # + c05's two


def test_outputs_and_accounting(runs, corpus):
    out, stats = runs[4]
    assert stats["docs_in"] == 22 and stats["docs_out"] == len(survivors(out)) == 17
    assert stats["removed_by_reason"] == {"dedup:exact": 1, "dedup:near": 3, "dedup:empty_after_line_dedup": 1}
    by_file: dict[str, dict[str, int]] = {}
    for doc_id, (reason, _) in expected_removals(corpus[2]).items():
        warc = f"{doc_id[0]}.warc.gz"
        by_file.setdefault(warc, {}).setdefault(reason, 0)
        by_file[warc][reason] += 1
    assert stats["removed_by_file"] == by_file
    assert stats["near"]["candidate_pairs"] >= stats["near"]["verified_edges"] == 3
    assert stats["cluster_size_histogram"] == {"2": 4}
    assert pq.read_schema(out / "dedup/removed.parquet") == REMOVED_SCHEMA
    documents = pq.read_schema(corpus[1][0]).names
    curated = pq.read_schema(out / "curated/a.parquet").names
    assert curated == [c for c in documents if c != "minhash"] + ["lines_removed"]
    sample = [json.loads(line) for line in open(out / "dedup/clusters.jsonl")]
    assert len(sample) == 4 and all(c["survivor"]["url"].startswith("https://") for c in sample)
    assert {m["doc_id"] for c in sample for m in c["removed"]} == {
        d for d, (reason, _) in expected_removals(corpus[2]).items() if reason != "dedup:empty_after_line_dedup"}


def test_same_survivors_with_one_and_four_partitions(runs):
    (out1, stats1), (out4, stats4) = runs[1], runs[4]
    assert survivors(out1) == survivors(out4)
    assert removed_rows(out1) == removed_rows(out4)
    assert stats1["removed_by_reason"] == stats4["removed_by_reason"]


def edit_region(text: str, fraction: float, start: float, end: float, seed: int) -> str:
    """Replace `fraction` of the words between relative positions `start` and `end`."""
    rng = random.Random(seed)
    words = text.split(" ")
    lo, hi = int(len(words) * start), int(len(words) * end)
    for i in rng.sample(range(lo, hi), int((hi - lo) * fraction)):
        words[i] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


@pytest.mark.parametrize("verify_with", ["text", "signature"])
def test_chain_does_not_merge_far_ends(texts, ray_session, tmp_path, verify_with):
    """A~B and B~C above the threshold, A~C far below: checked, A and C both survive; unchecked,
    the LSH component merges them. (Jaccard distance is a metric, so a chain with wide margins on
    both sides needs a low threshold: B edits A's first half, C edits B's second half.)"""
    a = texts[20]
    b = edit_region(a, 0.1, 0.0, 0.5, 1)
    c = edit_region(b, 0.1, 0.5, 1.0, 2)
    sets = {name: shingle_hashes(t) for name, t in (("A", a), ("B", b), ("C", c))}
    ab, bc, ac = (exact_jaccard(sets[x], sets[y]) for x, y in ("AB", "BC", "AC"))
    assert min(ab, bc) >= 0.6 and ac <= 0.42  # a chain at threshold 0.5, margins >= 0.08
    files = [write_docs(tmp_path, "chain", [("A", "u/A", a), ("B", "u/B", b), ("C", "u/C", c)])]
    for verify, expected in ((True, {"A", "C"}), (False, {"A"})):
        out = tmp_path / f"verify-{verify}"
        cfg = make_cfg(out, threshold=0.5, verify=verify, verify_with=verify_with, survivor=["doc_id"])
        cfg.dedup.line.enabled = False
        stats = run_dedup(cfg, str(out), files)
        assert survivors(out) == expected, verify
        assert stats["near"]["verified_edges"] == (2 if verify else stats["near"]["candidate_pairs"])
        if verify:
            assert stats["near"]["components_split_by_chain_check"] == 1


def test_survivor_policy_and_url_dedup(texts, ray_session, tmp_path):
    """URL, then exact, then near dedup, each keeping the highest quality_score (or, by policy, the
    longest text); removed documents point to the final survivor; empty URLs never match; documents
    annotated without the minhash filter get signatures computed on the fly."""
    t = texts[10]
    rows = [("d1", "https://x.example/", t, 0.2),
            ("d2", "https://y.example/", t.replace(".", ""), 0.9),           # exact copy of d1, better
            ("d3", "https://z.example/", t + " and a few extra words at the very end", 0.5),  # near d1/d2
            ("d4", "https://x.example/", texts[11], 0.1),                     # d1's URL, worse
            ("d5", "", texts[12], 0.1), ("d6", "", texts[13], 0.1)]
    files = [write_docs(tmp_path, "q", rows, quality=True, minhash=False)]
    out = tmp_path / "quality"
    cfg = make_cfg(out)
    cfg.dedup.by_url = True
    stats = run_dedup(cfg, str(out), files)
    assert survivors(out) == {"d2", "d5", "d6"}
    assert {r[0]: (r[1], r[2]) for r in removed_rows(out)} == {
        "d1": ("dedup:exact", "d2"), "d3": ("dedup:near", "d2"), "d4": ("dedup:url", "d2")}
    assert stats["removed_by_reason"] == {"dedup:url": 1, "dedup:exact": 1, "dedup:near": 1}
    out = tmp_path / "length"
    run_dedup(make_cfg(out, survivor=["length"]), str(out), files)
    assert "d3" in survivors(out) and not {"d1", "d2"} & survivors(out)


def test_resume_and_stale_outputs(corpus, ray_session, tmp_path):
    base, files, _ = corpus
    out = tmp_path / "resume"
    stale = out / "curated" / "gone.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier run")
    first = run_dedup(make_cfg(out), str(out), files)
    assert not stale.exists() and sorted(p.name for p in (out / "curated").iterdir()) == [
        "a.parquet", "b.parquet", "c.parquet"]
    (out / "curated").rename(out / "curated-moved")  # a rerun with the same config does nothing
    assert run_dedup(make_cfg(out), str(out), files) == first and not (out / "curated").exists()
    again = run_dedup(make_cfg(out, threshold=0.9), str(out), files)  # another config: redone
    assert again["config_hash"] != first["config_hash"] and (out / "curated" / "a.parquet").exists()


def test_bad_inputs_name_file_and_key(corpus, ray_session, tmp_path):
    base, files, _ = corpus
    with pytest.raises(ValueError, match="dedup.near.num_bands"):
        run_dedup(make_cfg(tmp_path / "o1", num_bands=64, rows_per_band=4), str(tmp_path / "o1"), files)
    cfg = make_cfg(tmp_path / "o2")
    cfg.filters["minhash"].num_perm = 64
    with pytest.raises(ValueError, match=r"documents/[abc]\.parquet: .*filters.minhash.num_perm is 64"):
        run_dedup(cfg, str(tmp_path / "o2"), files)
    empty = write_docs(tmp_path, "empty", [])
    stats = run_dedup(make_cfg(tmp_path / "o3"), str(tmp_path / "o3"), [empty])
    assert stats["docs_in"] == stats["docs_out"] == 0
    assert pq.read_table(tmp_path / "o3/curated/empty.parquet").num_rows == 0


def test_steps_can_be_switched_off(corpus, ray_session, tmp_path):
    base, files, docs = corpus
    out = tmp_path / "exact-only"
    cfg = make_cfg(out, enabled=False)
    cfg.dedup.line.enabled = False
    stats = run_dedup(cfg, str(out), files)
    assert stats["removed_by_reason"] == {"dedup:exact": 1} and stats["near"] == {}
    out = tmp_path / "nothing"
    cfg = make_cfg(out, enabled=False)
    cfg.dedup.line.enabled = cfg.dedup.exact = False
    stats = run_dedup(cfg, str(out), files)
    curated = duckdb.sql(f"select doc_id, text, lines_removed from '{out}/curated/*.parquet'").fetchall()
    assert stats["removed_by_reason"] == {} and {d: t for d, t, _ in curated} == docs
    assert {lines for _, _, lines in curated} == {0}


def test_incremental_dedup_against_an_earlier_run(texts, ray_session, tmp_path):
    """A second run against the first: its exact and near copies of first-run documents are
    removed in their favour, its own duplicates as usual; the first run's outputs are untouched,
    and redoing the first run changes the second's fingerprint."""
    from pipeline.stages.fingerprint import dedup_fingerprint

    first, second = tmp_path / "first", tmp_path / "second"
    first_files = [write_docs(first, "old", [(f"o{i}", f"https://old.example/{i}", texts[i]) for i in range(4)])]
    cfg1 = make_cfg(first, verify_with="signature")
    run_dedup(cfg1, str(first), first_files)
    before = duckdb.sql(f"select * from '{first}/curated/*.parquet' order by doc_id").fetchall()
    rows = [("n0", "", texts[0].replace(".", "")),           # exact copy (normalized) of o0
            ("n1", "", edit_words(texts[1], 0.02, seed=1)),  # near copy of o1
            ("n5", "", texts[5]), ("n6", "", texts[6]),
            ("n7", "", texts[6] + " and a few more words")]  # near copy of this run's n6, longer
    second_files = [write_docs(second, "new", rows)]
    cfg2 = make_cfg(second, verify_with="signature")
    cfg2.dedup.against = [str(first)]
    stats = run_dedup(cfg2, str(second), second_files, dedup_fingerprint(cfg2, "decided"))
    assert survivors(second) == {"n5", "n7"}
    assert removed_rows(second) == [("n0", "dedup:exact", "o0"), ("n1", "dedup:near", "o1"),
                                    ("n6", "dedup:near", "n7")]
    assert stats["docs_in"] == 5 and stats["against_docs"] == 4 and stats["docs_out"] == 2
    assert duckdb.sql(f"select * from '{first}/curated/*.parquet' order by doc_id").fetchall() == before
    fingerprint = dedup_fingerprint(cfg2, "decided")
    run_dedup(make_cfg(first, verify_with="signature", threshold=0.9), str(first), first_files)
    assert dedup_fingerprint(cfg2, "decided") != fingerprint
    with pytest.raises(ValueError, match="verify_with: signature"):
        parse_config({"input": {"paths": ["x"]}, "dedup": {"against": [str(first)]}, "output": {"path": "o"}})
