"""The distributed dedup stage against a single-process reference: the same removals and
survivors for 1, 2 and 8 partitions; its connected components (large-star/small-star rounds over
spilled edge files) against scipy."""
from __future__ import annotations

import random

import duckdb
import numpy as np
import pytest

from filters.dedup import connected_components
from pipeline.stages import dedup as stage
from tests.dedup_reference import reference_dedup
from tests.test_dedup import distinct_real_docs, edit_words
from tests.test_dedup_stage import FOOTER, make_cfg, write_docs


def scale_corpus(shared_data, base) -> list[str]:
    """Four files of real CC text: originals (some with quality scores), normalized exact copies,
    near copies at several edit rates, chains A ~ A' ~ A'' whose ends differ more, shared URLs,
    a footer on many pages and a page that is only footers."""
    texts = distinct_real_docs(shared_data, 48, min_chars=1500, max_chars=8000)
    rng = random.Random(7)
    rows: list[tuple] = []
    for i, t in enumerate(texts):
        rows.append((f"o{i:02d}", f"https://o.example/{i}", t + ("\n" + FOOTER if i % 3 == 0 else ""),
                     rng.choice([None, 0.2, 0.5, 0.9])))
    for i in range(0, 10):
        rows.append((f"x{i:02d}", f"https://x.example/{i}", texts[i].replace(".", " ."), rng.choice([None, 0.7])))
    for i in range(10, 30):
        rows.append((f"n{i:02d}", f"https://o.example/{i}" if i % 5 == 0 else f"https://n.example/{i}",
                     edit_words(texts[i], rng.choice([0.01, 0.03, 0.06, 0.12]), seed=i), rng.choice([None, 0.95])))
    for i in range(30, 38):
        first = edit_words(texts[i], 0.1, seed=100 + i)
        rows.append((f"c{i:02d}a", f"https://c.example/{i}a", first, None))
        rows.append((f"c{i:02d}b", f"https://c.example/{i}b", edit_words(first, 0.1, seed=200 + i), None))
    rows.append(("f00", "https://f.example/", FOOTER + "\n\n" + FOOTER, None))
    rng.shuffle(rows)
    return [write_docs(base, f"part{k}", rows[k::4], quality=True) for k in range(4)]


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    return scale_corpus(shared_data, tmp_path_factory.mktemp("scale-corpus"))


def outcome(out) -> tuple[dict, list]:
    removed = {d: (r, s) for d, r, s in duckdb.sql(
        f"select doc_id, reason, survivor_id from '{out}/dedup/removed.parquet'").fetchall()}
    curated = sorted(duckdb.sql(f"select doc_id, text from '{out}/curated/*.parquet'").fetchall())
    return removed, curated


@pytest.mark.slow
@pytest.mark.parametrize("verify_with,by_url", [("text", False), ("signature", True)])
def test_partitions_change_nothing_and_match_the_reference(files, ray_session, tmp_path, verify_with, by_url):
    expected = reference_dedup(files, verify_with=verify_with, by_url=by_url, max_repeats=3)
    reasons = {r for r, _ in expected.values()}
    assert {"dedup:exact", "dedup:near", "dedup:empty_after_line_dedup"} <= reasons
    results = []
    for partitions in (1, 2, 8):
        out = tmp_path / f"p{partitions}"
        cfg = make_cfg(out, partitions, verify_with=verify_with)
        cfg.dedup.by_url = by_url
        stats = stage.run_dedup(cfg, str(out), files)
        assert stats["scale"]["partitions"] == partitions and stats["scale"]["bytes_spilled"] > 0
        assert not (out / "dedup" / "work").exists()  # scratch removed
        results.append(outcome(out))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == expected


class Inline:
    """Stands in for Ray: runs each task in this process (the tasks are plain functions)."""

    def put(self, value):
        return value

    def get(self, values):
        return values

    def remote(self, fn):
        class Task:
            @staticmethod
            def remote(*args):
                return fn(*args)

            @staticmethod
            def options(**_):
                return Task
        return Task


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_star_small_star_components_match_scipy(tmp_path, seed):
    rng = np.random.default_rng(seed)
    files = 5
    plan = stage.DedupPlan.from_config(make_cfg(tmp_path, partitions=3), str(tmp_path),
                                       [f"f{i}.parquet" for i in range(files)])
    gids = (rng.integers(0, files, 400).astype(np.int64) << 32) | rng.integers(0, 10_000, 400)
    gids = np.unique(gids)
    a, b = rng.integers(0, len(gids), 300), rng.integers(0, len(gids), 300)
    path = np.arange(len(gids) // 4)  # a long chain: many rounds for label propagation
    a, b = np.concatenate([a, path[:-1]]), np.concatenate([b, path[1:]])
    keep = a != b
    a, b = gids[a[keep]], gids[b[keep]]
    spill = stage._Spill(plan, "cc00000", "test", stage._PAIRS)
    stage._spill_edges(spill, a, b, plan)
    spill.close()
    waves = stage._Waves(Inline(), plan)
    name, rounds = stage.connected_components_rounds(waves)
    assert rounds < 20
    waves.partitions(stage.label_partition, name)
    labels = {}
    for g in range(plan.groups):
        table = stage._read_spilled(plan, "nodes", g, stage._PAIRS)
        labels.update(zip(table.column("a").to_pylist(), table.column("b").to_pylist()))
    nodes = np.unique(np.concatenate([a, b]))
    reference = connected_components(len(nodes), np.searchsorted(nodes, np.stack([a, b], axis=1)))
    assert sorted(labels) == nodes.tolist()
    smallest = {}
    for node, label in zip(nodes.tolist(), reference.tolist()):
        smallest[label] = min(smallest.get(label, node), node)
    assert all(labels[node] == smallest[label] for node, label in zip(nodes.tolist(), reference.tolist()))
