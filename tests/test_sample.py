"""The embedded demo WARC (pipeline/sample/__init__.py): it parses with fastwarc and warcio, matches its
manifest, rebuilds byte-identically, decodes its legacy charsets, and holds the languages,
duplicates, PII and junk the demo is meant to show."""
from __future__ import annotations

import json
import os
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator as FastArchiveIterator
from warcio.archiveiterator import ArchiveIterator as WarcioArchiveIterator

from filters.extract import html_to_text
from filters.language import identify_language
from filters.pii import mask_emails, mask_ips, mask_phone_numbers
from pipeline.inputs.warc import ReadError, iter_records
from pipeline.sample import MANIFEST, PAGES_DIR, SampleError, SampleManifest, load_manifest, main, write_sample


@dataclass
class Fetched:
    """One response or revisit record as fastwarc delivers it (payload already de-chunked/gunzipped)."""

    record_type: str
    record_id: str
    url: str
    status: int | None
    charset: str | None
    headers: dict[str, str]
    http_headers: dict[str, str]
    payload: bytes


@pytest.fixture(scope="module")
def manifest() -> SampleManifest:
    return load_manifest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "sample.warc.gz"
    assert write_sample(out, force=True)
    return out


@pytest.fixture(scope="module")
def fetched(built: Path) -> list[Fetched]:
    """Every response and revisit record, in file order."""
    records = []
    with open(built, "rb") as fh:
        for rec in FastArchiveIterator(fh, parse_http=True, auto_decode="all"):
            record_type = str(rec.record_type).rsplit(".", 1)[-1]
            if record_type not in ("response", "revisit"):
                continue
            records.append(Fetched(
                record_type=record_type, record_id=rec.record_id, url=rec.headers.get("WARC-Target-URI"),
                status=rec.http_headers.status_code, charset=rec.http_charset,
                headers=dict(rec.headers.items()), http_headers=dict(rec.http_headers.items()),
                payload=rec.reader.read()))
    return records


def _by_url(fetched: list[Fetched], kind: str = "response") -> dict[str, Fetched]:
    return {f.url: f for f in fetched if f.record_type == kind}


def _source_text(file: str) -> str | None:
    """Main text of a page file as authored (UTF-8 on disk): the reference for decoding checks."""
    return html_to_text((PAGES_DIR / file).read_text(encoding="utf-8"))


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _gzip_members(data: bytes) -> list[bytes]:
    """The raw gzip members of a multi-member .gz file."""
    members, pos = [], 0
    while pos < len(data):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        inflater.decompress(data[pos:])
        assert inflater.eof, f"truncated gzip member at byte {pos}"
        end = len(data) - len(inflater.unused_data)
        members.append(data[pos:end])
        pos = end
    return members


def test_record_counts_and_order_match_manifest(built: Path, manifest: SampleManifest) -> None:
    pages = manifest.pages
    expected = Counter({"warcinfo": 1,
                        "response": sum(p.kind != "revisit" for p in pages),
                        "revisit": sum(p.kind == "revisit" for p in pages),
                        "request": sum(p.request for p in pages),
                        "metadata": sum(p.request for p in pages)})
    types, ids, targets = [], [], []
    with open(built, "rb") as fh:
        for rec in FastArchiveIterator(fh):
            types.append(str(rec.record_type).rsplit(".", 1)[-1])
            ids.append(rec.record_id)
            targets.append((types[-1], rec.headers.get("WARC-Target-URI")))
    assert Counter(types) == expected
    assert types[0] == "warcinfo"
    assert len(set(ids)) == len(ids)
    fetched_pages = [uri for kind, uri in targets if kind in ("response", "revisit")]
    assert fetched_pages == [p.url for p in pages]
    # the size the brief asks for: a demo that runs in seconds
    assert 40 <= len(types) <= 70


def test_warcio_reads_the_same_records_with_valid_digests(built: Path) -> None:
    with open(built, "rb") as fh:
        fast = [(str(r.record_type).rsplit(".", 1)[-1], r.record_id) for r in FastArchiveIterator(fh)]
    checked = []
    with open(built, "rb") as fh:
        for rec in WarcioArchiveIterator(fh, check_digests="raise"):
            rec.content_stream().read()  # reading to the end verifies block and payload digests
            checked.append((rec.rec_type, rec.rec_headers.get_header("WARC-Record-ID")))
    assert checked == fast


def test_pipeline_reader_sees_every_record_without_errors(built: Path, manifest: SampleManifest) -> None:
    records = list(iter_records(lambda: open(built, "rb")))
    assert not [r for r in records if isinstance(r, ReadError)]
    statuses = [(r.target_uri, r.http_status) for r in records if r.record_type == "response"]
    assert statuses == [(p.url, p.status) for p in manifest.pages if p.kind != "revisit"]


def test_rebuild_is_byte_identical_one_gzip_member_per_record(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.warc.gz"
    assert write_sample(again, force=True)
    data = built.read_bytes()
    assert again.read_bytes() == data
    members = _gzip_members(data)
    with open(built, "rb") as fh:
        assert len(members) == sum(1 for _ in FastArchiveIterator(fh))
    assert all(struct.unpack("<I", m[4:8])[0] == 0 for m in members)  # gzip mtime field


def test_build_is_skipped_while_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "s.warc.gz"
    assert write_sample(out)
    assert not write_sample(out)
    os.utime(out, (0, 0))  # older than every source file
    assert write_sample(out)


def test_cli_writes_the_requested_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli" / "sample.warc.gz"
    assert main(["--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out


def test_charsets_and_http_encodings_decode_to_the_authored_text(fetched: list[Fetched],
                                                                 manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    tricky = [p for p in manifest.pages
              if p.encode_as or p.kind == "charset" or p.content_encoding or p.transfer_encoding]
    assert {p.encode_as for p in tricky} >= {"windows-1251", "gb2312", "windows-1252", "shift_jis"}
    for page in tricky:
        rec = responses[page.url]
        assert rec.charset == page.charset, page.url
        source = (PAGES_DIR / page.file).read_bytes()
        if page.encode_as:
            assert rec.payload != source, f"{page.url}: body was not re-encoded"
        else:
            assert rec.payload == source, f"{page.url}: chunked/gzip body did not round-trip"
        assert html_to_text(rec.payload, encoding=rec.charset) == _source_text(page.file), page.url
    wire = {p.url: responses[p.url].http_headers for p in tricky}
    assert any(h.get("Transfer-Encoding") == "chunked" for h in wire.values())
    assert any(h.get("Content-Encoding") == "gzip" for h in wire.values())


def test_bad_charset_page_really_lies(fetched: list[Fetched], manifest: SampleManifest) -> None:
    """windows-1252 bytes declared as UTF-8: the declared charset cannot decode them."""
    page = next(p for p in manifest.pages if p.kind == "charset" and p.encode_as == "windows-1252")
    rec = _by_url(fetched)[page.url]
    assert rec.charset == "utf-8"
    with pytest.raises(UnicodeDecodeError):
        rec.payload.decode("utf-8")
    text = html_to_text(rec.payload, encoding=rec.charset)
    assert "Café Lumière" in text and "“" in text and "€" in text


def test_expected_languages_are_identified(fetched: list[Fetched], manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    found = set()
    for page in manifest.pages:
        if page.language is None or page.status != 200:
            continue
        rec = responses[page.url]
        text = html_to_text(rec.payload, encoding=rec.charset)
        language, _score = identify_language(text)
        assert language == page.language, f"{page.url}: identified {language}, manifest says {page.language}"
        found.add(language)
    assert found >= {"en", "de", "fr", "es", "ru", "zh", "ja"}


def test_articles_are_long_and_wrapped_in_boilerplate(fetched: list[Fetched], manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    articles = [p for p in manifest.pages if p.kind == "article"]
    assert len(articles) >= 15
    boilerplate_words = 0
    for page in articles:
        rec = responses[page.url]
        main_words = len(html_to_text(rec.payload, encoding=rec.charset).split())
        all_words = len(html_to_text(rec.payload, encoding=rec.charset, main_content=False).split())
        assert 300 <= main_words <= 900, page.url
        assert all_words > main_words, f"{page.url}: main-content extraction removed nothing"
        boilerplate_words += all_words - main_words
    assert boilerplate_words >= 100 * len(articles)


def test_mirrors_are_exact_and_near_duplicates_are_near(fetched: list[Fetched], manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    originals = {p.file: p.url for p in manifest.pages if p.kind == "article"}
    mirrors = [p for p in manifest.pages if p.kind == "mirror"]
    assert len(mirrors) >= 2
    for page in mirrors:
        assert responses[page.url].payload == responses[originals[page.file]].payload

    texts = {p.url: html_to_text(responses[p.url].payload) for p in manifest.pages if p.kind == "near_duplicate"}
    assert len(texts) >= 3
    for a, b in combinations(texts, 2):
        assert texts[a] != texts[b]
        assert _jaccard(texts[a], texts[b]) >= 0.8, (a, b)
    article_texts = [html_to_text(responses[url].payload) for url in originals.values()]
    for a, b in combinations(article_texts, 2):
        assert _jaccard(a, b) < 0.1  # unrelated articles share almost no 5-grams


def test_pii_is_on_the_pii_pages_only(fetched: list[Fetched], manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    totals: dict[str, Counter] = {"pii": Counter(), "article": Counter()}
    for page in manifest.pages:
        if page.kind in totals:
            text = html_to_text(responses[page.url].payload)
            totals[page.kind].update({"emails": mask_emails(text)[1], "phones": mask_phone_numbers(text)[1],
                                      "ips": mask_ips(text)[1]})
    assert totals["pii"]["emails"] >= 3 and totals["pii"]["phones"] >= 4 and totals["pii"]["ips"] >= 5
    assert sum(totals["article"].values()) == 0


def test_non_html_and_non_200_records(fetched: list[Fetched], manifest: SampleManifest) -> None:
    responses = _by_url(fetched)
    by_type = {p.content_type: responses[p.url] for p in manifest.pages if p.kind == "non_html"}
    png = by_type["image/png"].payload
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    ihdr_len, = struct.unpack(">I", png[8:12])
    ihdr = png[12:16 + ihdr_len]
    assert struct.unpack(">I", png[16 + ihdr_len:20 + ihdr_len])[0] == zlib.crc32(ihdr)
    pdf = by_type["application/pdf"].payload
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert json.loads(by_type["application/json"].payload)["status"] == "ok"
    assert b"User-agent:" in by_type["text/plain"].payload

    redirect = next(p for p in manifest.pages if p.kind == "redirect")
    assert responses[redirect.url].status == 301 and responses[redirect.url].payload == b""
    assert responses[redirect.url].http_headers["Location"] == redirect.location
    error = next(p for p in manifest.pages if p.kind == "error")
    assert responses[error.url].status == 404


def test_revisit_points_at_its_original(fetched: list[Fetched], manifest: SampleManifest) -> None:
    page = next(p for p in manifest.pages if p.kind == "revisit")
    revisit = _by_url(fetched, "revisit")[page.url]
    original = _by_url(fetched)[page.revisit_of]
    assert revisit.headers["WARC-Refers-To"] == original.record_id
    assert revisit.headers["WARC-Payload-Digest"] == original.headers["WARC-Payload-Digest"]
    assert revisit.payload == b""


def test_page_folder_stays_small_and_says_it_is_synthetic() -> None:
    assert sum(p.stat().st_size for p in PAGES_DIR.rglob("*") if p.is_file()) < 300_000
    assert "synthetic" in (PAGES_DIR / "README.md").read_text(encoding="utf-8").lower()


def _manifest_copy(folder: Path, edit=None) -> Path:
    """The real manifest, optionally edited, next to links to the real page folders."""
    raw = json.loads(MANIFEST.read_text(encoding="utf-8"))
    if edit is not None:
        edit(raw)
    for sub in {Path(p["file"]).parts[0] for p in raw["pages"] if p.get("file")} - {"nope", ".."}:
        (folder / sub).symlink_to(PAGES_DIR / sub)
    path = folder / "manifest.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_manifest_copy_loads(tmp_path: Path, manifest: SampleManifest) -> None:
    assert load_manifest(_manifest_copy(tmp_path)) == manifest


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m["pages"][1].update(colour="red"), ("pages.1.colour", "Extra inputs")),
    (lambda m: m["pages"][3].update(file="nope/missing.html"), ("pages[3]", "file: 'nope/missing.html'")),
    (lambda m: m["pages"][3].update(file="../manifest.json"), ("pages[3]", "file: '../manifest.json'")),
    (lambda m: m["pages"][2].update(encode_as="klingon-8"), ("pages.2", "klingon-8")),
    (lambda m: m["pages"][4].update(status=302), ("pages.4", "location")),
    (lambda m: m["pages"].insert(5, {"kind": "revisit", "url": "https://a.example/",
                                     "revisit_of": "https://a.example/", "tests": "x"}),
     ("pages[5]", "revisit_of")),
])
def test_bad_manifest_is_refused_with_the_page_and_key(tmp_path: Path, edit, expected: tuple[str, str]) -> None:
    bad = _manifest_copy(tmp_path, edit)
    with pytest.raises(SampleError) as err:
        load_manifest(bad)
    assert str(bad) in str(err.value)
    for part in expected:
        assert part in str(err.value)
