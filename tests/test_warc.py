"""WARC inputs: path resolution, CC listings, record iteration with the warcio fallback."""
from __future__ import annotations

import gzip
import io

import pytest

from pipeline.inputs.warc import (
    InputError,
    RawRecord,
    ReadError,
    input_stem,
    iter_records,
    read_paths_listing,
    resolve_inputs,
    unique_stems,
)


def _warc_record(record_id: str, body: bytes, uri: str = "http://example.com/") -> bytes:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
            f"WARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return gzip.compress(head.encode() + http + b"\r\n\r\n")


def test_resolve_local_globs_and_limit(tmp_path):
    for name in ("b.warc.gz", "a.warc.gz", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = resolve_inputs([str(tmp_path / "*.warc.gz")])
    assert [p.rsplit("/", 1)[1] for p in found] == ["a.warc.gz", "b.warc.gz"]
    assert len(resolve_inputs([str(tmp_path / "*.warc.gz")], limit=1)) == 1


def test_missing_local_path_is_an_error(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        resolve_inputs([str(tmp_path / "nope-*.warc.gz")])


def test_urls_kept_as_given():
    urls = ["https://data.commoncrawl.org/x.warc.gz", "s3://bucket/key.warc.gz"]
    assert resolve_inputs(urls) == urls


def test_common_crawl_paths_listing(tmp_path):
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(gzip.compress(
        b"crawl-data/CC-MAIN-2024-22/segments/1/warc/CC-MAIN-1-00000.warc.gz\n"
        b"crawl-data/CC-MAIN-2024-22/segments/1/warc/CC-MAIN-1-00001.warc.gz\n"))
    paths = read_paths_listing(str(listing), "https://data.commoncrawl.org/")
    assert paths == [
        "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/segments/1/warc/CC-MAIN-1-00000.warc.gz",
        "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/segments/1/warc/CC-MAIN-1-00001.warc.gz",
    ]
    assert resolve_inputs([], str(listing), "https://data.commoncrawl.org", limit=1) == paths[:1]


def test_stems_unique_for_same_named_files():
    stems = unique_stems(["/a/x.warc.gz", "/b/x.warc.gz", "/c/y.warc"])
    assert len(set(stems.values())) == 3
    assert stems["/c/y.warc"] == "y"
    assert input_stem("https://h/p/CC-MAIN-1-00000.warc.gz") == "CC-MAIN-1-00000"


def test_iter_records_reads_plain_and_gzip():
    data = _warc_record("00000000-0000-0000-0000-000000000001", b"<p>hello</p>") + \
        _warc_record("00000000-0000-0000-0000-000000000002", b"<p>world</p>")
    recs = list(iter_records(lambda: io.BytesIO(data)))
    assert [type(r) for r in recs] == [RawRecord, RawRecord]
    assert recs[0].http_status == 200 and recs[0].content_type == "text/html"
    assert recs[0].charset == "utf-8"


def test_damaged_tail_becomes_one_read_error():
    good = _warc_record("00000000-0000-0000-0000-000000000001", b"<p>hello</p>")
    recs = list(iter_records(lambda: io.BytesIO(good + b"this is not a warc record at all\r\n" * 5)))
    assert isinstance(recs[0], RawRecord)
    assert isinstance(recs[-1], ReadError)
    assert sum(isinstance(r, RawRecord) for r in recs) == 1


def test_arc_file_read_through_warcio_fallback(shared_data):
    recs = list(iter_records(lambda: open(shared_data / "warc/edge_cases/warcio_example.arc.gz", "rb")))
    assert not any(isinstance(r, ReadError) for r in recs)
    assert any(isinstance(r, RawRecord) and r.record_type == "response" for r in recs)


def test_truncated_file_recovers_record_fastwarc_misses(shared_data):
    # FastWARC reads 3 records then fails; warcio reads the 4th: we must deliver all 4, once each.
    recs = [r for r in iter_records(lambda: open(shared_data / "warc/edge_cases/warcio_example-trunc.warc", "rb"))
            if isinstance(r, RawRecord)]
    assert len(recs) == 4
    assert len({r.record_id for r in recs}) == 4
