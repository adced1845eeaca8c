"""Streaming: a task's peak memory does not grow with the WARC (a regression guard, not a timing test)."""
from __future__ import annotations

import pytest

from bench.bench_memory import concatenated_warc, task_peak
from bench.common import realweb_files

pytestmark = pytest.mark.slow


def test_peak_rss_flat_as_the_warc_grows_4x(shared_data, tmp_path):
    small = realweb_files(shared_data)[0]
    large = concatenated_warc(shared_data, tmp_path, 1)  # all four files: ~4x the records
    small_mb, _, small_docs = task_peak(small, tmp_path / "a", {"gopher": {}, "minhash": {}})
    large_mb, _, large_docs = task_peak(large, tmp_path / "b", {"gopher": {}, "minhash": {}})
    assert large_docs > 3.5 * small_docs
    assert large_mb < small_mb * 1.3 + 50, (small_mb, large_mb)  # holding the documents would add ~250 MB
