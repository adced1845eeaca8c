"""Build the embedded demo WARC from the synthetic pages in `pipeline/sample/pages/`.

    python -m pipeline.sample [--out PATH] [--force]

`pages/manifest.json` lists every page in WARC order: URL, file, HTTP status, content type,
charset, how the body is encoded on the wire and what the page is meant to test. This module turns
it into a WARC/1.1 file shaped like a Common Crawl segment: a `warcinfo` record, then `response`
records (some preceded by a `request` and followed by a `metadata` record) and one `revisit`.

The output goes to `pipeline/sample_data/sample.warc.gz` under the current directory, the path
`configs/sample.yaml` reads: run from the repo root (as `make sample` does) that is inside the
checkout; run with an installed wheel it is beside the user's copy of the config, never inside the
installed package (which may be read-only and is replaced on upgrade). `--out` writes elsewhere.

The output is byte-identical on every rebuild: dates derive from the manifest's `crawl_start`,
record ids are uuid5 of the page's position and URL, and every record is its own gzip member with
mtime 0. The build is skipped when the output is newer than this module and every page file.
All content is synthetic, written for Sieve; real runs take real WARCs.
"""
from __future__ import annotations

import argparse
import base64
import codecs
import datetime as dt
import gzip
import hashlib
import http
import json
import os
import sys
import uuid
from email.utils import format_datetime
from pathlib import Path
from typing import Iterator, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PAGES_DIR = Path(__file__).resolve().parent / "pages"
MANIFEST = PAGES_DIR / "manifest.json"
# Relative to the current directory (see the module docstring): the input path of configs/sample.yaml.
DEFAULT_OUT = Path("pipeline") / "sample_data" / "sample.warc.gz"

# uuid5 namespace of every record id in the sample (stable across rebuilds and machines).
RECORD_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sieve.example/sample-warc")
USER_AGENT = "SieveSampleBot/1.0 (synthetic sample; +https://sieve.example/bot)"
SERVERS = ("nginx", "Apache/2.4.58 (Debian)", "cloudflare", "LiteSpeed")
CHUNK_BYTES = 2048
REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
CONFORMS_TO = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
WARCINFO = (f"software: sieve pipeline.sample\r\nformat: WARC File Format 1.1\r\nconformsTo: {CONFORMS_TO}\r\n"
            "isPartOf: sieve-sample\r\noperator: Sieve project\r\n"
            "description: Synthetic demo sample: every page was written for Sieve, nothing was crawled. "
            "Real runs take real WARCs.\r\n").encode("utf-8")

PageKind = Literal["article", "language", "near_duplicate", "mirror", "pii", "junk", "charset",
                   "non_html", "error", "redirect", "revisit"]


class SampleError(Exception):
    """The manifest or a page file is unusable; the message names the file, page and key."""


class SamplePage(BaseModel):
    """One manifest entry: a page as the crawler fetched it."""

    model_config = ConfigDict(extra="forbid")

    kind: PageKind = Field(description="What sort of page this is (counts in the test and README)")
    url: str = Field(description="WARC-Target-URI")
    file: str | None = Field(None, description="Body, relative to pages/; none for an empty body")
    status: int = Field(200, ge=100, le=599, description="HTTP status code")
    content_type: str | None = Field("text/html", description="HTTP Content-Type without parameters")
    charset: str | None = Field(None, description="charset parameter of the HTTP Content-Type header")
    encode_as: str | None = Field(None, description="Re-encode the UTF-8 source file into this codec")
    content_encoding: Literal["gzip"] | None = Field(None, description="HTTP Content-Encoding of the body")
    transfer_encoding: Literal["chunked"] | None = Field(None, description="HTTP Transfer-Encoding")
    location: str | None = Field(None, description="Location header of a redirect")
    revisit_of: str | None = Field(None, description="URL of the earlier response a revisit repeats")
    language: str | None = Field(None, description="Expected language (lid.176 code) of the main text")
    request: bool = Field(False, description="Also write a request and a metadata record, like Common Crawl")
    tests: str = Field(min_length=1, description="What the page is meant to exercise")

    @model_validator(mode="after")
    def _consistent(self) -> SamplePage:
        if self.kind == "revisit":
            if not self.revisit_of or self.file:
                raise ValueError("a revisit needs revisit_of and no file")
        elif self.revisit_of:
            raise ValueError("revisit_of is only for kind 'revisit'")
        if (300 <= self.status < 400) != (self.location is not None):
            raise ValueError("location is required for 3xx statuses and only allowed for them")
        if self.encode_as:
            try:
                codecs.lookup(self.encode_as)
            except LookupError:
                raise ValueError(f"encode_as: unknown codec {self.encode_as!r}") from None
        return self


class SampleManifest(BaseModel):
    """`pages/manifest.json`."""

    model_config = ConfigDict(extra="forbid")

    about: str
    warc_filename: str
    crawl_start: dt.datetime
    seconds_between_fetches: int = Field(ge=1)
    pages: list[SamplePage] = Field(min_length=1)


def load_manifest(path: Path = MANIFEST) -> SampleManifest:
    """Parse and check the manifest; every page file must exist inside the manifest's folder."""
    try:
        manifest = SampleManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise SampleError(f"{path}: cannot read the manifest: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SampleError(f"{path}: invalid manifest: {problems}") from exc
    folder = path.parent
    seen_responses: set[str] = set()
    for index, page in enumerate(manifest.pages):
        where = f"{path}: pages[{index}] ({page.url})"
        if page.file is not None:
            relative = Path(os.path.normpath(page.file))
            if relative.is_absolute() or relative.parts[0] == ".." or not (folder / relative).is_file():
                raise SampleError(f"{where}: file: {page.file!r} is not a file inside {folder}")
        if page.revisit_of is not None and page.revisit_of not in seen_responses:
            raise SampleError(f"{where}: revisit_of: {page.revisit_of!r} is not an earlier response")
        if page.kind != "revisit":
            seen_responses.add(page.url)
    return manifest


def page_body(page: SamplePage, folder: Path) -> bytes:
    """The entity body as the server meant it (before any Content-/Transfer-Encoding)."""
    if page.file is None:
        return b""
    path = folder / page.file
    data = path.read_bytes()
    if page.encode_as is None:
        return data
    try:
        return data.decode("utf-8").encode(page.encode_as)
    except UnicodeError as exc:
        raise SampleError(f"{path}: cannot re-encode as {page.encode_as} (manifest key encode_as): {exc}") from exc


def _chunked(body: bytes) -> bytes:
    """HTTP/1.1 chunked transfer coding of `body`."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + CHUNK_BYTES]), body[i:i + CHUNK_BYTES])
             for i in range(0, len(body), CHUNK_BYTES)]
    return b"".join(parts) + b"0\r\n\r\n"


def _digest(data: bytes) -> str:
    """WARC digest label: sha1 in base32, as Common Crawl writes it."""
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def _stable_pick(key: str, choices: tuple[str, ...]) -> str:
    return choices[hashlib.sha1(key.encode()).digest()[0] % len(choices)]


def _server_ip(url: str) -> str:
    """A stable documentation-range (TEST-NET-3) address for the URL's host."""
    return f"203.0.113.{1 + hashlib.sha1(urlsplit(url).netloc.encode()).digest()[0] % 254}"


def _record_id(index: int, warc_type: str, url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(RECORD_ID_NAMESPACE, f'{index}:{warc_type}:{url}')}>"


def _warc_date(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_response(page: SamplePage, body: bytes, when: dt.datetime) -> tuple[bytes, bytes]:
    """(HTTP header block, wire body) of a response, with the page's content/transfer coding."""
    wire = gzip.compress(body, compresslevel=9, mtime=0) if page.content_encoding == "gzip" else body
    headers = [("Date", format_datetime(when, usegmt=True)),
               ("Server", _stable_pick(urlsplit(page.url).netloc, SERVERS))]
    if page.content_type:
        value = page.content_type + (f"; charset={page.charset}" if page.charset else "")
        headers.append(("Content-Type", value))
    if page.location:
        headers.append(("Location", page.location))
    if page.content_encoding:
        headers.append(("Content-Encoding", page.content_encoding))
    if page.transfer_encoding == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        wire = _chunked(wire)
    else:
        headers.append(("Content-Length", str(len(wire))))
    headers.append(("Connection", "close"))
    status_line = f"HTTP/1.1 {page.status} {http.HTTPStatus(page.status).phrase}"
    head = "\r\n".join([status_line, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n"
    return head.encode("ascii"), wire


def http_request(page: SamplePage) -> bytes:
    """The GET request a crawler would have sent for `page`."""
    parts = urlsplit(page.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", f"User-Agent: {USER_AGENT}",
             "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
             "Accept-Language: en-US,en;q=0.5", "Accept-Encoding: gzip", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _metadata_block(page: SamplePage) -> bytes:
    """Crawler metadata fields for a fetch, as Common Crawl's metadata records carry them."""
    fetch_ms = 80 + int.from_bytes(hashlib.sha1(page.url.encode()).digest()[:2], "big") % 900
    fields = f"fetchTimeMs: {fetch_ms}\r\n"
    if page.encode_as or page.charset:
        fields += f"charset-detected: {(page.encode_as or page.charset or '').upper()}\r\n"
    return fields.encode("ascii")


def warc_record(warc_type: str, headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One uncompressed WARC/1.1 record (header fields in the order given, then Content-Length)."""
    fields = [("WARC-Type", warc_type), *headers, ("Content-Length", str(len(block)))]
    head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def build_records(manifest: SampleManifest, folder: Path = PAGES_DIR) -> Iterator[bytes]:
    """Every WARC record of the sample, uncompressed, in file order."""
    start = manifest.crawl_start
    info_id = _record_id(0, "warcinfo", manifest.warc_filename)
    yield warc_record("warcinfo", [("WARC-Date", _warc_date(start)), ("WARC-Record-ID", info_id),
                                   ("WARC-Filename", manifest.warc_filename),
                                   ("Content-Type", "application/warc-fields")], WARCINFO)

    responses: dict[str, tuple[str, str, SamplePage, str]] = {}  # url -> (record id, date, page, payload digest)
    for index, page in enumerate(manifest.pages, start=1):
        when = start + dt.timedelta(seconds=index * manifest.seconds_between_fetches)
        date = _warc_date(when)
        common = [("WARC-Date", date)]
        origin = [("WARC-Warcinfo-ID", info_id),
                  ("WARC-IP-Address", _server_ip(page.url)),
                  ("WARC-Target-URI", page.url)]
        if page.kind == "revisit":
            original_id, original_date, original, payload_digest = responses[page.revisit_of or ""]
            block, _ = http_response(original, page_body(original, folder), when)
            yield warc_record("revisit", [*common, ("WARC-Record-ID", _record_id(index, "revisit", page.url)),
                                          ("Content-Type", "application/http; msgtype=response"), *origin,
                                          ("WARC-Profile", REVISIT_PROFILE),
                                          ("WARC-Refers-To", original_id),
                                          ("WARC-Refers-To-Target-URI", original.url),
                                          ("WARC-Refers-To-Date", original_date),
                                          ("WARC-Payload-Digest", payload_digest),
                                          ("WARC-Block-Digest", _digest(block))], block)
            continue

        response_id = _record_id(index, "response", page.url)
        concurrent: list[tuple[str, str]] = []
        if page.request:
            request_id = _record_id(index, "request", page.url)
            request = http_request(page)
            yield warc_record("request", [*common, ("WARC-Record-ID", request_id),
                                          ("Content-Type", "application/http; msgtype=request"), *origin,
                                          ("WARC-Block-Digest", _digest(request))], request)
            concurrent = [("WARC-Concurrent-To", request_id)]
        body = page_body(page, folder)
        head, wire = http_response(page, body, when)
        block = head + wire
        payload_digest = _digest(wire)
        responses[page.url] = (response_id, date, page, payload_digest)
        yield warc_record("response", [*common, ("WARC-Record-ID", response_id),
                                       ("Content-Type", "application/http; msgtype=response"), *origin,
                                       *concurrent, ("WARC-Payload-Digest", payload_digest),
                                       ("WARC-Block-Digest", _digest(block))], block)
        if page.request:
            meta = _metadata_block(page)
            yield warc_record("metadata", [*common, ("WARC-Record-ID", _record_id(index, "metadata", page.url)),
                                           ("Content-Type", "application/warc-fields"),
                                           ("WARC-Warcinfo-ID", info_id), ("WARC-Target-URI", page.url),
                                           ("WARC-Concurrent-To", response_id),
                                           ("WARC-Block-Digest", _digest(meta))], meta)


def source_files(manifest_path: Path = MANIFEST) -> list[Path]:
    """Everything the sample is built from: this module and every file next to the manifest."""
    return [Path(__file__).resolve(), *sorted(p for p in manifest_path.parent.rglob("*") if p.is_file())]


def is_up_to_date(out: Path, sources: list[Path]) -> bool:
    """True when `out` exists and is newer than every source file."""
    if not out.is_file():
        return False
    built = out.stat().st_mtime_ns
    return all(src.stat().st_mtime_ns <= built for src in sources)


def write_sample(out: Path = DEFAULT_OUT, manifest_path: Path = MANIFEST, *, force: bool = False) -> bool:
    """Write the sample WARC to `out` (atomically, one gzip member per record).

    Returns False without writing when `out` is already newer than its sources (unless `force`).
    """
    if not force and is_up_to_date(out, source_files(manifest_path)):
        return False
    manifest = load_manifest(manifest_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            for record in build_records(manifest, manifest_path.parent):
                fh.write(gzip.compress(record, compresslevel=9, mtime=0))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.sample",
        description="Build the embedded demo WARC from pipeline/sample/pages/ (synthetic pages written "
                    "for Sieve; real runs take real WARCs). Skips the build when the output is newer "
                    "than the pages and this script.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output .warc.gz (default {DEFAULT_OUT} under the current directory: "
                             "the input path of configs/sample.yaml)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the output is up to date")
    args = parser.parse_args(argv)
    try:
        written = write_sample(args.out, force=args.force)
    except SampleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size_kb = args.out.stat().st_size / 1024
    print(f"{'wrote' if written else 'up to date:'} {args.out} ({size_kb:.1f} KB)")
    return 0

