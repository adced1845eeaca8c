"""The per-WARC task annotates documents in batches, filter by filter: the outputs must be the
ones document-by-document annotation gives, a failing filter drops only its document, and the
shared per-text caches are released after each batch."""
from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from filters.base import batch_caches
from filters.gopher import GopherFilter
from filters.text import text_stats
from pipeline.config import parse_config
from pipeline.sample import write_sample
from pipeline.stages import annotate
from pipeline.stages.annotate import process_warc

ALL_FILTERS = {"language": {}, "pii": {}, "gopher": {}, "gopher_repetition": {}, "c4": {}, "fineweb": {},
               "quality": {}, "toxicity": {}, "minhash": {}}


def _run(warc: Path, out: Path) -> tuple[dict, dict]:
    cfg = parse_config({"input": {"paths": [str(warc)]}, "filters": ALL_FILTERS,
                        "output": {"path": str(out), "keep_rejected": True}})
    stats = process_warc(str(warc), "x", cfg, str(out))
    tables = {sub: pq.read_table(out / sub / "x.parquet") for sub in ("documents", "rejected")}
    return stats, tables


@pytest.fixture(scope="module")
def real_warc(shared_data) -> Path:
    return shared_data / "bench/realweb-0000.warc.gz"


def test_batches_give_the_outputs_of_one_document_at_a_time(real_warc, tmp_path, monkeypatch):
    batched_stats, batched = _run(real_warc, tmp_path / "batched")
    assert batched_stats["documents"] > 3 * annotate.BATCH_DOCS  # several full batches and a partial one
    monkeypatch.setattr(annotate, "BATCH_DOCS", 1)
    single_stats, single = _run(real_warc, tmp_path / "single")
    for sub in ("documents", "rejected"):
        assert batched[sub].equals(single[sub]), sub
    drop = ("seconds", "task_seconds")
    assert {k: v for k, v in batched_stats.items() if k not in drop} == {k: v for k, v in single_stats.items() if k not in drop}


def test_a_failing_filter_drops_only_its_document(tmp_path, monkeypatch):
    warc = tmp_path / "sample.warc.gz"
    write_sample(warc, force=True)
    _, clean = _run(warc, tmp_path / "clean")
    victim = clean["documents"].column("doc_id")[1].as_py()
    real_annotate = GopherFilter.annotate

    def flaky(self, doc):
        if doc.doc_id == victim:
            raise RuntimeError("boom")
        real_annotate(self, doc)

    monkeypatch.setattr(GopherFilter, "annotate", flaky)
    stats, broken = _run(warc, tmp_path / "broken")
    assert stats["errors"] == {"filter_error:gopher": 1}
    kept = clean["documents"].filter(pc.not_equal(clean["documents"].column("doc_id"), victim))
    assert broken["documents"].equals(kept)  # every other document, in order, with its signals
    assert broken["rejected"].equals(clean["rejected"])


def test_shared_views_last_a_batch_and_are_released():
    texts = [f"document {i} has a few words in it" for i in range(annotate.BATCH_DOCS)]
    with batch_caches():
        first = [text_stats(t) for t in texts]
        assert all(text_stats(t) is s for t, s in zip(texts, first))  # all kept for the whole batch
        assert len(text_stats.batch) == len(texts)
    assert text_stats.batch is None  # released: outside a batch only the last few are cached
    assert text_stats(texts[0]) is not first[0]
