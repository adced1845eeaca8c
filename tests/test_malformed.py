"""Malformed input: every real edge case and generated damage (pipeline.sample.damage), through the reader
and through run_pipeline. The job never crashes; every record is counted once (kept, removed(reason)
or error(reason)); records after damage are recovered; a file that cannot be opened or is not a WARC
fails alone, with its reason, while every other file completes."""
from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipeline.config import parse_config
from pipeline.inputs import salvage
from pipeline.inputs.warc import InputError, NotWarcError, RawRecord, ReadError, iter_records, open_input
from pipeline.run import run_pipeline
from pipeline.sample import warc_record
from pipeline.sample.damage import RECORD_KINDS, WHOLE_FILE_KINDS, damage_variants, record_spans

# What a reader must find in each file of warc/edge_cases (README of the shared data, checked by
# hand where the parsers disagree): {record type: count}, unreadable regions.
EDGE_CASES = {
    "resiliparse_clipped.warc.gz": ({}, 1),  # its one record is cut off inside its gzip member
    "sparkwarc_CC-MAIN-2016-50_sample.warc.gz": ({"warcinfo": 1, "request": 6, "response": 6, "metadata": 5}, 0),
    "sparkwarc_CC-MAIN-2016-50_sample.wat.gz": ({"warcinfo": 1, "metadata": 15}, 0),
    "sparkwarc_CC-MAIN-2016-50_sample.wet.gz": ({"warcinfo": 1, "conversion": 68}, 0),
    "warcio_example-bad-non-chunked.warc.gz": ({"warcinfo": 2, "request": 2, "response": 1, "revisit": 1}, 0),
    "warcio_example-iana.org-chunked.warc": ({"warcinfo": 1, "request": 1, "response": 1}, 0),
    "warcio_example-space-in-target-uri.warc.gz": ({"warcinfo": 1, "resource": 1}, 0),
    "warcio_example-trunc.warc": ({"warcinfo": 2, "request": 1, "response": 1}, 0),
    "warcio_example-wget-bad-target-uri.warc.gz": (
        {"warcinfo": 1, "request": 1, "response": 1, "metadata": 1, "resource": 2}, 0),
    "warcio_example-wrong-chunks.warc.gz": ({"request": 1, "response": 1}, 0),
    "warcio_example.arc.gz": ({"warcinfo": 1, "response": 1}, 0),
}
MAX_RECORD = 200_000  # input.max_record_bytes for these tests: the oversize variants exceed it


def real_warcs(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "warc").rglob("*") if p.is_file() and "LICENSE" not in p.name)


def read_all(path: Path, max_record_bytes: int = MAX_RECORD) -> list[RawRecord | ReadError]:
    return list(iter_records(lambda start=0: open_input(str(path), start=start),
                             max_record_bytes=max_record_bytes, name=str(path)))


def split(items: list[RawRecord | ReadError]) -> tuple[list[RawRecord], list[ReadError]]:
    return [r for r in items if isinstance(r, RawRecord)], [r for r in items if isinstance(r, ReadError)]


# ---------------------------------------------------------------- the reader on real edge cases

@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_read_as_documented(shared_data, name):
    records, errors = split(read_all(shared_data / "warc/edge_cases" / name))
    types, n_errors = EDGE_CASES[name]
    assert Counter(r.record_type for r in records) == Counter(types)
    assert len(errors) == n_errors
    assert len({(r.record_id, r.offset) for r in records}) == len(records)  # each record once


def test_crlf_damaged_sparkwarc_responses_are_recovered(shared_data):
    """Every Content-Length is wrong (CRLF became LF): records are cut at the next WARC header."""
    records, _ = split(read_all(shared_data / "warc/edge_cases/sparkwarc_CC-MAIN-2016-50_sample.warc.gz"))
    responses = [r for r in records if r.record_type == "response"]
    assert sum(r.target_uri.startswith("http://08.od.ua/") for r in responses) == 5
    assert all(r.http_status == 200 and r.content_type == "text/html" for r in responses)
    pages = [r.read_payload(MAX_RECORD) for r in responses]
    assert all(b"</html>" in page.lower() for page in pages)
    assert len({r.record_id for r in records}) == 18


def test_cut_record_is_an_error_not_a_partial_document(shared_data):
    _, errors = split(read_all(shared_data / "warc/edge_cases/resiliparse_clipped.warc.gz"))
    assert errors[0].offset == 0 and "truncated" in errors[0].message and "f3dfa8fa" in errors[0].message


# ---------------------------------------------------------------- the reader on generated damage

def test_damage_generator_is_deterministic(shared_data, tmp_path):
    source = shared_data / "warc/other/dolma_wget_sample-0000.warc.gz"
    first = {v.kind: v.path.read_bytes() for v in damage_variants(source, tmp_path / "a", 5) if v.kind != "unopenable"}
    again = {v.kind: v.path.read_bytes() for v in damage_variants(source, tmp_path / "b", 5) if v.kind != "unopenable"}
    other = {v.kind: v.path.read_bytes() for v in damage_variants(source, tmp_path / "c", 6) if v.kind != "unopenable"}
    assert first == again
    assert set(first) == set(RECORD_KINDS + WHOLE_FILE_KINDS) - {"unopenable"}
    assert [k for k in RECORD_KINDS if first[k] != other[k]] == list(RECORD_KINDS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reader_recovers_every_intact_record_and_reports_each_damage(shared_data, tmp_path, seed):
    """For each real WARC and each kind of damage: the records whose bytes are untouched are all
    delivered, once; the damaged regions are each reported once; nothing else appears."""
    variants = [v for source in real_warcs(shared_data)
                for v in damage_variants(source, tmp_path, seed, max_record_bytes=MAX_RECORD, kinds=RECORD_KINDS)]
    assert {v.kind for v in variants} == set(RECORD_KINDS)
    for variant in variants:
        records, errors = split(read_all(variant.path))
        ids = [r.record_id for r in records]
        assert sorted(ids) == sorted(variant.intact_ids), (variant.path.name, errors)
        assert len(errors) == variant.damaged_regions, (variant.path.name, [e.message for e in errors])
        if variant.oversize_id:
            big = next(r for r in records if r.record_id == variant.oversize_id)
            assert big.content_length > MAX_RECORD and len(big.read_payload()) <= MAX_RECORD + 1


def test_whole_file_failures_name_file_and_reason(shared_data, tmp_path):
    source = shared_data / "warc/commoncrawl/jwarc_cc.warc.gz"
    for variant in damage_variants(source, tmp_path, 0, kinds=WHOLE_FILE_KINDS):
        with pytest.raises(InputError) as failure:
            read_all(variant.path)
        assert failure.value.reason == variant.fails and str(variant.path) in str(failure.value)
        assert isinstance(failure.value, NotWarcError) == (variant.fails == "not_warc")


def _record(n: int, body: bytes = b"<html><body><p>page</p></body></html>") -> bytes:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    return warc_record("response", [("WARC-Record-ID", f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"),
                                    ("WARC-Target-URI", f"http://example.com/{n}"),
                                    ("Content-Type", "application/http; msgtype=response")], http)


def test_plain_warc_resyncs_after_garbage_and_wrong_lengths():
    plain = _record(1) + b"\x00\x17 some bytes a disk scrambled \xff\xfe\r\n" + _record(2) + _record(3)
    records, errors = split(list(iter_records(lambda: io.BytesIO(plain))))
    assert [r.record_id[-3:] for r in records] == ["01>", "02>", "03>"] and len(errors) == 1
    # CRLF -> LF everywhere (sparkwarc's damage), uncompressed: every record still comes out whole.
    lf = (_record(1) + _record(2, b"<p>" + b"x" * 5000 + b"</p>\r\n" * 40) + _record(3)).replace(b"\r\n", b"\n")
    records, errors = split(list(iter_records(lambda: io.BytesIO(lf))))
    assert len(records) == 3 and not errors
    assert records[1].read_payload().count(b"</p>") == 40


def test_records_that_really_repeat_are_all_delivered(shared_data):
    """Concatenated copies of a WARC repeat record ids: deduplicating the reader passes must not
    drop them (the cut third copy loses only its cut record)."""
    data = (shared_data / "warc/commoncrawl/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz").read_bytes()
    spans = record_spans(data)
    cut = spans[20].start + 100
    records, errors = split(list(iter_records(lambda: io.BytesIO(data * 2 + data[:cut]))))
    assert len(records) == 2 * len(spans) + 20 and len(errors) == 1


def test_salvage_keeps_only_the_start_of_an_oversize_record():
    """On the salvage path a record over the cap is streamed past, not buffered."""
    big = _record(2, b"<p>" + b"y" * 3_000_000 + b"</p>")
    lf_damaged = (_record(1) + big + _record(3)).replace(b"\r\n", b"\n")  # forces the salvage path
    events = salvage.plain_events(io.BytesIO(lf_damaged).read, 0)
    cut = list(salvage.RecordSplitter(events, 100_000))
    assert [len(r.block) if isinstance(r, salvage.SalvagedRecord) else r for r in cut][1] == salvage.BLOCK_PREFIX
    records, errors = split(list(iter_records(lambda: io.BytesIO(lf_damaged), max_record_bytes=100_000)))
    assert len(records) == 3 and not errors and records[1].content_length > 3_000_000


def test_damaged_gzip_member_in_the_middle_loses_only_its_record():
    members = [gzip.compress(_record(n), mtime=0) for n in range(1, 6)]
    corrupt = bytearray(members[2])
    corrupt[len(corrupt) // 2] ^= 0x10
    data = b"".join(members[:2]) + bytes(corrupt) + b"".join(members[3:])
    records, errors = split(list(iter_records(lambda: io.BytesIO(data))))
    assert [r.record_id[-2:] for r in records] == ["1>", "2>", "4>", "5>"]
    assert len(errors) == 1 and errors[0].offset == len(members[0]) + len(members[1])


# ---------------------------------------------------------------- the whole job over damaged corpora

@pytest.fixture(scope="module")
def damaged_corpus(shared_data, ray_session, tmp_path_factory):
    """Every real WARC, every record-level damage of each, and the whole-file cases: one run."""
    work = tmp_path_factory.mktemp("malformed")
    originals = real_warcs(shared_data)
    variants = [v for source in originals
                for v in damage_variants(source, work / "damaged", 7, max_record_bytes=MAX_RECORD, kinds=RECORD_KINDS)]
    variants += damage_variants(originals[0], work / "damaged", 7, kinds=WHOLE_FILE_KINDS)
    inputs = [str(p) for p in originals] + [str(v.path) for v in variants]
    cfg = parse_config({"run": {"progress": False},
                        "input": {"paths": inputs, "max_record_bytes": MAX_RECORD, "retries": 0},
                        "filters": {"gopher": {}}, "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
                        "output": {"path": str(work / "out")}})
    summary = run_pipeline(cfg)
    return originals, variants, {f["input"]: f for f in summary["files"]}, summary


@pytest.mark.slow
def test_job_completes_and_every_file_adds_up(damaged_corpus):
    originals, variants, by_input, summary = damaged_corpus
    assert len(by_input) == summary["inputs"] == len(originals) + len(variants)
    for f in by_input.values():
        assert f["kept"] + sum(f["removed"].values()) + sum(f["errors"].values()) == f["records"], f["input"]
    totals = summary["totals"]
    assert totals["kept"] + sum(totals["removed"].values()) + sum(totals["errors"].values()) == totals["records"]
    assert totals["kept"] > 100
    failed = {f["input"] for f in by_input.values() if f["status"] != "ok"}
    assert failed == {str(v.path) for v in variants if v.fails}  # the others all complete


@pytest.mark.slow
def test_accounting_adds_up_to_the_records_in_the_files(damaged_corpus, shared_data):
    """Each file's record count is what is in it: every record of a good file; for damage, the
    intact records plus one error per damaged region; a whole-file failure is one error."""
    originals, variants, by_input, _ = damaged_corpus
    for source in originals:
        spans = record_spans(source.read_bytes())
        expected = len(spans) if spans else sum(EDGE_CASES[source.name][0].values()) + EDGE_CASES[source.name][1]
        assert by_input[str(source)]["records"] == expected, source.name
    for variant in variants:
        stats = by_input[str(variant.path)]
        if variant.fails:
            assert stats["errors"] == {variant.fails: 1} and stats["records"] == 1, variant.path.name
            continue
        assert stats["records"] == len(variant.intact_ids) + variant.damaged_regions, variant.path.name
        assert stats["errors"].get("read_error", 0) == variant.damaged_regions, variant.path.name
        if variant.oversize_id:
            original = by_input[str(variant.source)]
            assert stats["removed"]["too_large"] == original["removed"].get("too_large", 0) + 1


@pytest.mark.slow
def test_errors_are_logged_with_offsets_and_recovered_pages_are_documents(damaged_corpus):
    _, variants, by_input, summary = damaged_corpus
    out = Path(summary["output"])
    for variant in (v for v in variants if v.damaged_regions):
        stats = json.loads((out / "stats" / f"{by_input[str(variant.path)]['stem']}.json").read_text())
        reads = [s for s in stats["error_samples"] if s["reason"] == "read_error"]
        assert len(reads) == variant.damaged_regions
        assert all(isinstance(s["offset"], int) and s["message"] for s in reads), variant.path.name
    urls = {u for (u,) in duckdb.sql(f"select url from '{out}/documents/*.parquet' union all "
                                     f"select url from '{out}/rejected/*.parquet'").fetchall()}
    assert len({u for u in urls if u.startswith("http://08.od.ua/")}) == 5  # from the CRLF-damaged file
    assert not any(u.startswith("http://oversize.example/") for u in urls)
