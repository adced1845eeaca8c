"""Input readers: every item of a WARC, WET, JSONL or Parquet file ends as exactly one document,
removed(reason) or error(reason), and the counts agree with an independent reader (warcio where
the pipeline reads with fastwarc; the json module and pyarrow for JSONL and Parquet). Then one
run of the whole pipeline per text format."""
from __future__ import annotations

import gzip
import io
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from pipeline.config import ExtractSection, InputSection, parse_config
from pipeline.inputs.readers import Doc, ItemError, NotParquetError, Removed, SchemaError, format_of, reader_for
from pipeline.inputs.warc import input_stem

HTML_TYPES = {"text/html", "application/xhtml+xml"}


def _read(path, **input_cfg):
    cfg = InputSection(paths=[str(path)], **input_cfg)
    return list(reader_for(str(path), cfg, ExtractSection()).read(str(path)))


def _outcomes(items) -> Counter:
    """Documents and reasons, counted."""
    return Counter("doc" if isinstance(i, Doc) else i.reason for i in items)


def test_format_of_by_name():
    assert format_of("/d/CC-MAIN-1-00000.warc.gz") == "warc"
    assert format_of("x.arc.gz") == format_of("x.warc") == format_of("x.arc") == format_of("x.warc.zst") == "warc"
    assert format_of("s3://b/CC-MAIN-1.warc.wet.gz") == format_of("x.wet") == "wet"
    assert format_of("https://h/a.jsonl.zst?sig=1") == format_of("a.jsonl.gz") == format_of("a.JSONL") == "jsonl"
    assert format_of("train-00000-of-00001.parquet") == "parquet"
    assert input_stem("a/x.jsonl.gz") == "x" and input_stem("CC-1.warc.wet.gz") == "CC-1"


def test_input_format_overrides_the_name(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text('{"text": "hello"}\n')
    assert _outcomes(_read(path, format="jsonl")) == {"doc": 1}


# ------------------------------------------------------------------ WARC and WET

def _warcio_expected(path: Path) -> tuple[Counter, int]:
    """(records by type, HTTP-200 HTML responses with a non-empty body) as warcio reads the file."""
    types, docs = Counter(), 0
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh, arc2warc=True):
            types[rec.rec_type] += 1
            http = rec.http_headers
            if rec.rec_type == "response" and http is not None and http.get_statuscode() == "200":
                ctype = (http.get_header("Content-Type") or "").split(";")[0].strip().lower()
                if ctype in HTML_TYPES and rec.content_stream().read().strip():
                    docs += 1
    return types, docs


@pytest.mark.parametrize("name", ["other/dolma_wget_sample-0000.warc.gz", "other/IAH-20080430204825-00000-blackbook.warc.gz",
                                  "commoncrawl/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"])
def test_warc_reader_counts_match_warcio(shared_data, name):
    path = shared_data / "warc" / name
    items = _read(path)
    types, docs = _warcio_expected(path)
    assert len(items) == sum(types.values())
    assert Counter(i.record_type for i in items) == types
    assert sum(isinstance(i, Doc) for i in items) == docs
    assert not any(isinstance(i, ItemError) for i in items)
    assert all(i.html and i.text is None for i in items if isinstance(i, Doc))


def _write_wet(path: Path, texts: list[str]) -> None:
    """A WET file as Common Crawl writes it: a warcinfo, then one conversion record per page."""
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for i, text in enumerate(texts):
            headers = {"WARC-Target-URI": f"https://example.org/{i}", "WARC-Date": "2024-05-01T00:00:00Z",
                       "Content-Type": "text/plain"}
            writer.write_record(writer.create_warc_record(f"https://example.org/{i}", "conversion",
                                                          payload=io.BytesIO(text.encode()), warc_headers_dict=headers))


def _warcio_conversions(path: Path) -> tuple[int, list[str]]:
    """(records, texts of the non-empty conversion records) as warcio reads the file."""
    records, texts = 0, []
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            records += 1
            text = rec.content_stream().read().decode("utf-8", "replace")
            if rec.rec_type == "conversion" and text.strip():
                texts.append(text)
    return records, texts


def test_wet_reader_on_a_written_file(tmp_path):
    path = tmp_path / "x.warc.wet.gz"
    _write_wet(path, ["First page.\nSecond line é.", "   ", "Третья страница."])
    items = _read(path)
    assert _outcomes(items) == {"doc": 2, "record:warcinfo": 1, "no_text": 1}
    records, texts = _warcio_conversions(path)
    assert len(items) == records
    docs = [i for i in items if isinstance(i, Doc)]
    assert [d.text for d in docs] == texts
    assert docs[0].url == "https://example.org/0" and docs[0].date == "2024-05-01T00:00:00Z"
    assert docs[0].html is None and docs[0].record_id.startswith("<urn:uuid:")


@pytest.mark.parametrize("name", ["whirlwind_CC-MAIN-2024-22.warc.wet.gz",
                                  "eugeneware_CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc.wet"])
def test_wet_reader_counts_match_warcio(shared_data, name):
    path = shared_data / "warc" / "commoncrawl" / name
    items = _read(path)
    records, texts = _warcio_conversions(path)
    assert len(items) == records
    assert [i.text for i in items if isinstance(i, Doc)] == texts and texts
    assert _outcomes(items)["record:warcinfo"] == 1


# ------------------------------------------------------------------ JSONL

ROWS = [
    {"id": "a", "text": "Alpha text.", "url": "https://a.example/", "date": "2020-01-01"},
    {"id": 7, "text": "Beta text.", "metadata": {"url": "https://b.example/"}},
    {"text": "No id: the row index is the id."},
    {"id": "d", "content": "text under another name"},
    {"id": "e", "text": "   "},
    {"id": "f", "text": 42},
    ["not", "an", "object"],
]
JSONL_LINES = [json.dumps(r) for r in ROWS[:3]] + ["", "{not json"] + [json.dumps(r) for r in ROWS[3:]]
JSONL_BYTES = ("\n".join(JSONL_LINES) + "\n").encode()


def _json_expected(data: bytes) -> Counter:
    """What each non-blank line should become, decided with the json module alone."""
    out = Counter()
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            out["bad_row"] += 1
            continue
        if not isinstance(row, dict) or ("text" in row and not isinstance(row["text"], (str, type(None)))):
            out["bad_row"] += 1
        elif not (row.get("text") or "").strip():
            out["no_text"] += 1
        else:
            out["doc"] += 1
    return out


@pytest.mark.parametrize("suffix,pack", [(".jsonl", bytes), (".jsonl.gz", gzip.compress),
                                         (".jsonl.zst", zstandard.ZstdCompressor().compress)])
def test_jsonl_reader_every_line_counted(tmp_path, suffix, pack):
    path = tmp_path / f"rows{suffix}"
    path.write_bytes(pack(JSONL_BYTES))
    items = _read(path, url_field="metadata.url")
    assert _outcomes(items) == _json_expected(JSONL_BYTES) == {"doc": 3, "bad_row": 3, "no_text": 2}
    docs = [i for i in items if isinstance(i, Doc)]
    assert [(d.record_id, d.offset, d.text) for d in docs] == [("a", 0, "Alpha text."), ("7", 1, "Beta text."),
                                                              ("", 2, "No id: the row index is the id.")]
    assert docs[0].date == "2020-01-01" and docs[1].url == "https://b.example/" and docs[0].url == ""
    assert [i.offset for i in items] == [0, 1, 2, 4, 5, 6, 7, 8]  # line numbers; line 3 is blank


def test_jsonl_text_field_and_oversize_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    big = json.dumps({"content": "x" * 5000})
    path.write_text("\n".join([json.dumps({"content": "short"}), big, json.dumps({"content": "after"})]) + "\n")
    items = _read(path, text_field="content", max_record_bytes=1024)
    assert [i.text if isinstance(i, Doc) else i.reason for i in items] == ["short", "too_large", "after"]


def test_jsonl_cut_gzip_is_one_read_error(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps({"text": f"row {i} " * 20}).encode() + b"\n" for i in range(200)))
    path.write_bytes(data[: len(data) // 2])
    items = _read(path)
    assert isinstance(items[-1], ItemError) and items[-1].reason == "read_error"
    assert all(isinstance(i, Doc) for i in items[:-1]) and 0 < len(items) - 1 < 200
    assert [i.offset for i in items[:-1]] == list(range(len(items) - 1))


def test_jsonl_lone_surrogate_escapes_become_valid_text(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "bad \\ud800 escape"}\n')
    (doc,) = _read(path)
    doc.text.encode("utf-8")  # Parquet needs valid UTF-8
    pa.array([doc.text])


def test_dolma_jsonl_matches_the_json_module(shared_data):
    for path in sorted((shared_data / "quality" / "dolma-cc-text").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        items = _read(path)
        assert len(items) == len(rows)
        assert [i.record_id for i in items] == [r["id"] for r in rows]
        assert [i.text for i in items if isinstance(i, Doc)] == [r["text"] for r in rows if r["text"].strip()]


def test_hplt_zst_with_short_field_names(shared_data):
    """warc2text JSONL (`t` text, `u` URL, zstd): one line holds invalid UTF-8 inside a string."""
    path = shared_data / "html" / "hplt-sample100" / "CC.jsonl.zst"
    with open(path, "rb") as fh:
        lines = [line for line in io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)) if line.strip()]
    items = _read(path, format="jsonl", text_field="t", url_field="u")
    assert len(items) == len(lines) == 100
    assert all(isinstance(i, (Doc, Removed)) for i in items)
    assert [i.url for i in items if isinstance(i, Doc)][:3] == [json.loads(l.decode("utf-8", "replace"))["u"]
                                                                for l in lines[:3]]


# ------------------------------------------------------------------ Parquet

def test_parquet_reader_row_groups_in_order(tmp_path):
    path = tmp_path / "rows.parquet"
    rows = [{"id": f"r{i}", "text": f"document {i}" if i % 5 else "", "url": f"https://p.example/{i}"} for i in range(25)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=4)
    assert pq.ParquetFile(path).num_row_groups == 7
    items = _read(path)
    table = pq.read_table(path)
    assert len(items) == table.num_rows
    assert [i.record_id for i in items] == table.column("id").to_pylist()
    assert [i.offset for i in items] == list(range(25))
    assert _outcomes(items) == {"doc": 20, "no_text": 5}
    assert [i.text for i in items if isinstance(i, Doc)] == [t for t in table.column("text").to_pylist() if t]


def test_parquet_without_the_text_column_or_not_parquet(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(SchemaError, match="input.text_field"):
        _read(path)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(NotParquetError):
        _read(bad)


def test_cc_llms_txt_parquet_matches_pyarrow(shared_data):
    path = shared_data / "quality" / "cc-llms-txt" / "CC-MAIN-2026-30_llms_txt_fixture.parquet"
    table = pq.read_table(path)
    items = _read(path, text_field="content", url_field="WARC-Target-URI", date_field="WARC-Date")
    assert len(items) == table.num_rows == 147
    texts, urls = table.column("content").to_pylist(), table.column("WARC-Target-URI").to_pylist()
    assert [(i.text, i.url) for i in items if isinstance(i, Doc)] == [(t, u) for t, u in zip(texts, urls)
                                                                     if t and t.strip()]
    assert _outcomes(items)["no_text"] == sum(1 for t in texts if not (t and t.strip()))
    assert all(i.record_id == "" for i in items)  # no id column: ids come from the row index


# ------------------------------------------------------------------ whole pipeline, one run per text format

def _pipeline_cfg(path, out, **input_cfg):
    return parse_config({
        "run": {"num_cpus": 2, "progress": False}, "input": {"paths": [str(path)], **input_cfg},
        "filters": {"gopher": {}, "minhash": {}}, "tokenizer": {"vocab_size": 400},
        "shards": {"target_tokens": 2000, "formats": ["parquet", "bin"]}, "output": {"path": str(out)}})


def _check_run(summary, out, expected_records):
    from pipeline.run import run_pipeline  # noqa: F401 - imported by the caller

    (stats_file,) = (out / "stats").glob("*.json")
    stats = json.loads(stats_file.read_text())
    assert stats["records"] == expected_records
    assert stats["kept"] + sum(stats["removed"].values()) + sum(stats["errors"].values()) == expected_records
    kept = pq.read_table(out / "curated").num_rows if (out / "curated").exists() else 0
    manifest = json.loads((out / "tokens" / "manifest.json").read_text())
    assert manifest["total_docs"] == kept > 0
    assert manifest["bin"]["train"]["docs"] + manifest["bin"]["val"]["docs"] == kept
    return stats


WORDS = ("the and of to in that it was for on with as his they be at one have this from by had not but what "
         "all were when we there can an your which their said if do will each about how up out them then she many "
         "some so these would other into has more her two like him see time could no make than first been its who "
         "now people my made over did down only way find use may water long little very after words called just "
         "where most know river garden market letter winter harvest weather village mill station").split()


def _english(i: int) -> str:
    """A few paragraphs of varied English-like sentences (passes the Gopher rules), seeded by i."""
    rng = random.Random(i)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                 for _ in range(24)]
    return "\n\n".join(" ".join(sentences[k:k + 4]) for k in range(0, 24, 4))


@pytest.mark.slow
def test_pipeline_on_jsonl(ray_session, tmp_path):
    from pipeline.run import run_pipeline

    path = tmp_path / "corpus.jsonl.gz"
    rows = [json.dumps({"id": f"d{i}", "text": _english(i), "url": f"https://x.example/{i}"}) for i in range(30)]
    rows += [json.dumps({"id": "dup", "text": _english(3)}), "{oops", json.dumps({"id": "empty"})]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    out = tmp_path / "out"
    stats = _check_run(run_pipeline(_pipeline_cfg(path, out)), out, 33)
    assert stats["errors"] == {"bad_row": 1} and stats["removed"]["no_text"] == 1
    docs = pq.read_table(out / "documents")
    assert "d0" in docs.column("warc_record_id").to_pylist()
    assert json.loads((out / "dedup" / "stats.json").read_text())  # dedup ran on the text documents


@pytest.mark.slow
def test_pipeline_on_parquet(ray_session, tmp_path):
    from pipeline.run import run_pipeline

    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist([{"body": _english(i), "link": f"https://p.example/{i}"} for i in range(20)]
                                        + [{"body": None, "link": "https://p.example/none"}]), path, row_group_size=8)
    out = tmp_path / "out"
    stats = _check_run(run_pipeline(_pipeline_cfg(path, out, text_field="body", url_field="link")), out, 21)
    assert stats["removed"]["no_text"] == 1
    assert "https://p.example/0" in pq.read_table(out / "documents").column("url").to_pylist()


@pytest.mark.slow
def test_pipeline_on_wet(ray_session, tmp_path):
    from pipeline.run import run_pipeline

    path = tmp_path / "CC-MAIN-test.warc.wet.gz"
    _write_wet(path, [_english(i) for i in range(12)])
    out = tmp_path / "out"
    stats = _check_run(run_pipeline(_pipeline_cfg(path, out)), out, 13)
    assert stats["removed"]["record:warcinfo"] == 1 and stats["record_types"] == {"conversion": 12, "warcinfo": 1}
