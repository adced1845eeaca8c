"""WARC inputs: resolve paths/URLs/listings, open them as retrying streams, iterate records.

fastwarc reads the records; when it rejects a file (ARC, odd gzip layouts) or fails part-way,
warcio takes over from the first record fastwarc did not deliver. After them, `pipeline.inputs.salvage`
reads on from the last record delivered: it confirms that the file ends cleanly (a cut last record
is reported) and recovers the records after damage where both parsers stop (corrupt or cut gzip
members, garbage between members, wrong Content-Lengths). Every unreadable region becomes one
counted `ReadError`; nothing is dropped silently. Streams are never read whole into memory.
"""
from __future__ import annotations

import functools
import glob
import gzip
import inspect
import io
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass
from http.client import HTTPException
from typing import IO, Any, Callable, Iterator

import fsspec

from pipeline.inputs import salvage

log = logging.getLogger("sieve.warc")

TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
# Input name suffixes left out of output stems (longest first where one ends another).
INPUT_SUFFIXES = (".warc.wet.gz", ".warc.wet", ".wet.gz", ".wet", ".warc.gz", ".warc", ".arc.gz", ".arc", ".warc.zst",
                  ".jsonl.gz", ".jsonl.zst", ".jsonl", ".parquet", ".gz")
DEFAULT_MAX_RECORD_BYTES = 50_000_000  # input.max_record_bytes' default
SNIFF_BYTES = 1 << 16


class InputError(Exception):
    """An input that cannot be opened or read at all (after retries); `reason` is its stats key."""

    reason = "open_error"


class NotWarcError(InputError):
    """An input that opens but holds no WARC or ARC record (empty, HTML, a tarball, ...)."""

    reason = "not_warc"


# ---------------------------------------------------------------- resolving inputs

def resolve_inputs(paths: list[str], paths_listing: str | None = None, base_url: str = "",
                   limit: int | None = None, storage_options: dict[str, Any] | None = None, *,
                   retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0) -> list[str]:
    """Expand local globs, remote globs (s3://bucket/*.warc.gz) and a CC `warc.paths.gz` listing.

    URLs without wildcards are kept as given; a local path that matches nothing is an error (a
    typo should not silently produce an empty run). The retry options apply to an https listing.
    """
    resolved: list[str] = []
    for pattern in paths:
        if "://" in pattern and not pattern.startswith("file://"):
            if any(ch in pattern for ch in "*?[") and not pattern.startswith(("http://", "https://")):
                fs, _, found = fsspec.get_fs_token_paths(pattern, storage_options=storage_options or {})
                proto = pattern.split("://", 1)[0]
                resolved.extend(sorted(f"{proto}://{p}" for p in found))
            else:
                resolved.append(pattern)
            continue
        local = pattern.removeprefix("file://")
        matches = sorted(glob.glob(os.path.expanduser(local), recursive=True))
        if not matches:
            raise InputError(f"input.paths: {pattern!r} matches no file")
        resolved.extend(m for m in matches if not os.path.isdir(m))  # unreadable files fail visibly later
    if paths_listing:
        resolved.extend(read_paths_listing(paths_listing, base_url, storage_options, retries=retries,
                                           backoff_s=backoff_s, timeout_s=timeout_s))
    if limit is not None:
        resolved = resolved[:limit]
    return resolved


def read_paths_listing(listing: str, base_url: str, storage_options: dict[str, Any] | None = None, *,
                       retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0) -> list[str]:
    """Lines of a Common Crawl `warc.paths(.gz)` listing joined onto `base_url`."""
    if listing.startswith(("http://", "https://")):
        raw = read_url_bytes(listing, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    else:
        with fsspec.open(listing, "rb", **(storage_options or {})) as fh:
            raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    base = base_url.rstrip("/") + "/" if base_url else ""
    out = []
    for line in raw.decode("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line if "://" in line or not base else base + line.lstrip("/"))
    return out


def input_stem(path: str) -> str:
    """File name without its format suffix: `CC-MAIN-...-00001.warc.gz` -> `CC-MAIN-...-00001`."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in INPUT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def unique_stems(paths: list[str]) -> dict[str, str]:
    """path -> output stem, unique across the run (same-named files get a short path hash)."""
    import hashlib

    stems = [input_stem(p) for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    out = {}
    for path, stem in zip(paths, stems):
        if counts[stem] > 1:
            stem = f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
        out[path] = stem
    return out


# ---------------------------------------------------------------- retrying streams

MAX_BACKOFF_S = 60.0


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying: 5xx/429/408 answers, timeouts, refused or dropped connections."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_HTTP
    return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, HTTPException, OSError))


def backoff_sleep(attempt: int, base_s: float) -> None:
    """Exponential backoff with full jitter: attempt 0 sleeps up to base_s, capped at a minute."""
    time.sleep(random.uniform(0, min(MAX_BACKOFF_S, base_s * (2 ** attempt))))


def read_url_bytes(url: str, retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0) -> bytes:
    """GET a small resource (a listing) with retries."""
    with RetryingHTTPStream(url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s) as fh:
        return fh.read()


class RetryingHTTPStream(io.RawIOBase):
    """A forward-only HTTP(S) body stream that survives 5xx, timeouts and dropped connections.

    On a transient failure it reconnects with `Range: bytes=<position>-` and carries on, so the
    consumer sees one uninterrupted byte stream. A server that ignores Range (answers 200 instead
    of 206) is handled by skipping the bytes already delivered. `retries` bounds the consecutive
    failures without progress; permanent answers (404, 403, ...) fail at once. `start` opens the
    body at a byte offset (how the salvage pass resumes without downloading the file again).
    """

    def __init__(self, url: str, *, retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0,
                 start: int = 0) -> None:
        super().__init__()
        self.url, self.retries, self.backoff_s, self.timeout_s = url, retries, backoff_s, timeout_s
        self.position = start
        self.reconnects = 0
        self._failures = 0  # consecutive failures since bytes last arrived
        self._at_end = False
        self._resp: Any = None
        self._open()

    def _fail(self, exc: BaseException, what: str) -> None:
        """Count a failure: raise InputError when it is permanent or the budget is spent, else back off."""
        if not _is_transient(exc) or self._failures >= self.retries:
            tries = f" after {self._failures + 1} attempts" if _is_transient(exc) else ""
            raise InputError(f"{self.url}: {what} at byte {self.position}{tries}: {exc}") from exc
        log.warning("retrying %s at byte %d after %s (attempt %d of %d)", self.url, self.position, exc,
                    self._failures + 1, self.retries)
        backoff_sleep(self._failures, self.backoff_s)
        self._failures += 1

    def _open(self) -> None:
        while True:
            try:
                self._resp = self._request()
                return
            except InputError:
                raise
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and self.position:  # resuming exactly at the end of the body
                    self._at_end = True
                    return
                self._fail(exc, "cannot open")
            except Exception as exc:  # noqa: BLE001 - classified by _fail
                self._fail(exc, "cannot open")

    def _request(self) -> Any:
        headers = {"User-Agent": "sieve/0.1 (web-data curation)"}
        if self.position:
            headers["Range"] = f"bytes={self.position}-"
        resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout_s)
        if self.position and resp.status == 200:  # Range ignored: skip what was delivered already
            _discard(resp, self.position)
        elif resp.status == 206:
            first = _range_start(resp.headers.get("Content-Range"))
            if first != self.position:
                resp.close()
                raise InputError(f"{self.url}: asked for bytes from {self.position}, server sent from {first}")
        return resp

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """fastwarc asks where the stream is (it panics on a stream without tell)."""
        return self.position

    def readinto(self, buffer: Any) -> int:
        while not self._at_end:
            try:
                n = self._resp.readinto(buffer)
                if n == 0 and self._expected_more():
                    raise ConnectionError("connection closed before the end of the body")
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified by _fail
                self._fail(exc, "read failed")
                log.warning("reconnecting %s at byte %d", self.url, self.position)
                self.reconnects += 1
                self._close_resp()
                self._open()
                continue
            if n:
                self._failures = 0
            self.position += n
            return n
        return 0

    def _expected_more(self) -> bool:
        length = self._resp.headers.get("Content-Length")
        if length is None:
            return False
        start = _range_start(self._resp.headers.get("Content-Range")) if self._resp.status == 206 else 0
        return self.position < start + int(length)

    def _close_resp(self) -> None:
        try:
            if self._resp is not None:
                self._resp.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
        self._resp = None

    def close(self) -> None:
        self._close_resp()
        super().close()


def _range_start(content_range: str | None) -> int:
    """First byte of `Content-Range: bytes a-b/total` (0 when absent)."""
    if not content_range:
        return 0
    return int(content_range.split()[1].split("-")[0])


def _discard(resp: Any, n: int) -> None:
    while n > 0:
        chunk = resp.read(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("body ended while skipping already-read bytes")
        n -= len(chunk)


def open_input(path: str, *, storage_options: dict[str, Any] | None = None, retries: int = 5,
               backoff_s: float = 1.0, timeout_s: float = 60.0, start: int = 0) -> IO[bytes]:
    """A binary, streaming, forward-readable file object for a local path or URL, from byte `start`.

    Raises InputError (naming the path and the cause) when the input cannot be opened: missing,
    a directory, no permission, an HTTP 4xx, or transient failures beyond `retries`.
    """
    if path.startswith(("http://", "https://")):
        return io.BufferedReader(RetryingHTTPStream(path, retries=retries, backoff_s=backoff_s,
                                                    timeout_s=timeout_s, start=start), 1 << 20)
    if "://" not in path or path.startswith("file://"):
        try:
            fh = open(path.removeprefix("file://"), "rb")
        except OSError as exc:  # missing, a directory, a dangling link, no permission
            raise InputError(f"{path}: cannot open: {exc}") from exc
    else:
        fh = open_remote(path, storage_options or {}, retries, backoff_s)
    if start:
        fh.seek(start)
    return fh


def open_remote(path: str, storage_options: dict[str, Any], retries: int, backoff_s: float) -> IO[bytes]:
    """Open an fsspec URL (s3://, gs://, ...), retrying what may be transient."""
    attempt = 0
    while True:
        try:
            return fsspec.open(path, "rb", **storage_options).open()
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise InputError(f"{path}: cannot open: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - remote store errors vary by backend
            if attempt >= retries:
                raise InputError(f"{path}: cannot open after {attempt + 1} attempts: {exc}") from exc
            log.warning("retrying %s after %s (attempt %d of %d)", path, exc, attempt + 1, retries)
            backoff_sleep(attempt, backoff_s)
            attempt += 1


# ---------------------------------------------------------------- records

@dataclass
class RawRecord:
    """One WARC record as the pipeline needs it (payload read only for responses that qualify)."""

    record_type: str
    record_id: str
    offset: int
    target_uri: str
    warc_date: str
    http_status: int | None
    content_type: str
    charset: str | None
    content_length: int
    truncated: str | None
    read_payload: Callable[[int], bytes]


@dataclass
class ReadError:
    """The unreadable remainder of a file (or a record), counted as error(read_error)."""

    offset: int
    message: str


def _clean_uri(uri: str | None) -> str:
    uri = (uri or "").strip()
    if uri.startswith("<") and uri.endswith(">"):  # wget writes <http://...>
        uri = uri[1:-1]
    return uri


def _fastwarc_records(stream: IO[bytes]) -> Iterator[RawRecord]:
    from fastwarc.warc import ArchiveIterator

    for rec in ArchiveIterator(stream, parse_http=True, auto_decode="all"):
        http = rec.http_headers if rec.is_http else None
        status = None
        if http is not None:
            try:
                status = http.status_code
            except Exception:  # noqa: BLE001 - unparsable status line
                status = None
        yield RawRecord(
            record_type=str(rec.record_type),
            record_id=rec.record_id or "",
            offset=rec.stream_pos,
            target_uri=_clean_uri(rec.headers.get("WARC-Target-URI")),
            warc_date=rec.headers.get("WARC-Date") or "",
            http_status=status,
            content_type=(rec.http_content_type or "").lower() if http is not None else "",
            charset=rec.http_charset if http is not None else None,
            content_length=rec.content_length,
            truncated=rec.headers.get("WARC-Truncated"),
            read_payload=rec.reader.read,
        )


@functools.cache
def _quiet_warcio() -> tuple[type, Callable[[Any], IO[bytes]]]:
    """warcio's archive iterator and record content stream, with its console writes sent to the log.

    warcio writes two things straight to stderr: a record not followed by a newline, and any
    decompression error met after a stream's first block (once for every block it reads on, then
    it reads on as if the data ended). In a Ray worker each write becomes a console line on the
    driver: thousands for one damaged WARC. The reading is unchanged; the damage itself is counted
    and logged with its offset (read_error, payload_error), so the message is only debug detail.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.bufferedreaders import BufferedReader, ChunkedDataReader, DecompressingBufferedReader

    class LoggedDecompression(BufferedReader):
        def _decompress(self, data: bytes) -> bytes:
            if not (self.decompressor and data and self.num_block_read):
                return super()._decompress(data)  # the first block: warcio's own fallbacks
            try:
                return self.decompressor.decompress(data)
            except Exception as exc:  # noqa: BLE001 - what warcio catches, then returns no data
                log.debug("warcio: %s data unreadable after %d bytes: %s", self.decomp_type, self.num_read, exc)
                return b""

    class LoggedArchiveReader(LoggedDecompression, DecompressingBufferedReader):
        pass

    class LoggedChunkedReader(LoggedDecompression, ChunkedDataReader):
        pass

    class QuietArchiveIterator(ArchiveIterator):
        INC_RECORD = ""

        def __init__(self, fileobj: IO[bytes], **kwargs: Any) -> None:
            super().__init__(fileobj, **kwargs)
            self.reader = LoggedArchiveReader(self.fh, block_size=self.reader.block_size)

    def content_stream(rec: Any) -> IO[bytes]:
        """ArcWarcRecord.content_stream() with the logged readers: the payload, de-chunked and decoded."""
        http = rec.http_headers
        if not http:
            return rec.raw_stream
        encoding = (http.get_header("content-encoding") or "").lower() or None
        if encoding not in BufferedReader.get_supported_decompressors():
            encoding = None
        if http.get_header("transfer-encoding") == "chunked":
            return LoggedChunkedReader(rec.raw_stream, decomp_type=encoding)
        return LoggedDecompression(rec.raw_stream, decomp_type=encoding) if encoding else rec.raw_stream

    return QuietArchiveIterator, content_stream


def _warcio_records(stream: IO[bytes]) -> Iterator[RawRecord]:
    archive_iterator, content_stream = _quiet_warcio()
    it = archive_iterator(stream, arc2warc=True)
    for rec in it:
        http = rec.http_headers
        status = None
        content_type, charset = "", None
        if http is not None:
            try:
                status = int(http.get_statuscode())
            except (TypeError, ValueError):
                status = None
            ctype = http.get_header("Content-Type") or ""
            content_type = ctype.split(";", 1)[0].strip().lower()
            for part in ctype.split(";")[1:]:
                key, _, value = part.partition("=")
                if key.strip().lower() == "charset":
                    charset = value.strip().strip("\"'") or None
        headers = rec.rec_headers
        stream_reader = content_stream(rec)
        yield RawRecord(
            record_type=rec.rec_type or "unknown",
            record_id=headers.get_header("WARC-Record-ID") or "",
            offset=it.get_record_offset(),
            target_uri=_clean_uri(headers.get_header("WARC-Target-URI")),
            warc_date=headers.get_header("WARC-Date") or "",
            http_status=status,
            content_type=content_type,
            charset=charset,
            content_length=int(headers.get_header("Content-Length") or 0),
            truncated=headers.get_header("WARC-Truncated"),
            read_payload=stream_reader.read,
        )


class _Delivered:
    """Records already yielded, so that a later reader pass skips exactly those.

    A pass re-reading the file skips the first n occurrences of a record key (its id, or its
    offset when it has none) if n were yielded before the pass's start offset: a record that
    really occurs twice in a file (concatenated WARCs) is still delivered twice.
    """

    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []  # (offset, key) of each record yielded
        self.counts: Counter[str] = Counter()
        self.in_pass: Counter[str] = Counter()
        self.last_offset = -1

    @staticmethod
    def key(rec: RawRecord) -> str:
        return rec.record_id or f"@{rec.offset}"

    def start_pass(self, start: int = 0) -> None:
        """A reader begins at byte `start`: records yielded before it will be met again."""
        self.in_pass = Counter(key for offset, key in self.order if offset < start)

    def seen(self, key: str) -> bool:
        """Count an occurrence of `key` in this pass; True if it was yielded already."""
        self.in_pass[key] += 1
        return self.in_pass[key] <= self.counts[key]

    def add(self, rec: RawRecord) -> None:
        key = self.key(rec)
        self.order.append((rec.offset, key))
        self.counts[key] += 1
        self.last_offset = max(self.last_offset, rec.offset)

    @property
    def count(self) -> int:
        return len(self.order)


def _materialized(rec: RawRecord, max_record_bytes: int) -> RawRecord:
    """Read the payload now (at most max_record_bytes + 1 bytes), so the record can be held back
    until its parser has moved past it; an unreadable payload raises again when it is asked for."""
    try:
        data, error = rec.read_payload(max_record_bytes + 1), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - bad chunking/encoding, Rust panics: the record's own error
        data, error = b"", exc

    def read_payload(n: int = -1) -> bytes:
        if error is not None:
            raise error
        return data if n < 0 else data[:n]

    rec.read_payload = read_payload
    return rec


class _Opener:
    """Opens the input at a byte offset: through the callable's `start` keyword when it has one
    (an HTTP Range request), otherwise by seeking or reading forward."""

    def __init__(self, open_stream: Callable[..., IO[bytes]]) -> None:
        self.open_stream = open_stream
        try:
            self.takes_start = "start" in inspect.signature(open_stream).parameters
        except (TypeError, ValueError):
            self.takes_start = False

    def open(self, start: int = 0) -> IO[bytes]:
        if start and self.takes_start:
            return self.open_stream(start=start)
        stream = self.open_stream()
        if start and stream.seekable():
            stream.seek(start)
        elif start:
            left = start
            while left > 0 and (chunk := stream.read(min(left, 1 << 20))):
                left -= len(chunk)
        return stream


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were read to sniff its format: replays them, then the rest."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        super().__init__()
        self.head, self.stream, self.position = head, stream, 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position < len(self.head):
            data = self.head[self.position: self.position + len(buffer)]
        else:
            data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def sniff_format(head: bytes) -> str:
    """What the first bytes of an input say it is: 'empty', 'warc', 'arc', 'compressed' (zstd or
    lz4: left to fastwarc) or 'unknown' (no WARC header at the start, maybe damaged)."""
    if not head:
        return "empty"
    content = head
    if head.startswith(b"\x1f\x8b"):
        try:
            content = zlib.decompressobj(31).decompress(head, 4096)
        except zlib.error:  # a corrupt first member: a damaged WARC until the salvage pass says otherwise
            return "warc"
    elif head.startswith((b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18")):
        return "compressed"
    content = content.lstrip(salvage.PADDING)
    if content.startswith(b"WARC/"):
        return "warc"
    if content.startswith(b"filedesc://"):
        return "arc"
    return "unknown"


def iter_records(open_stream: Callable[..., IO[bytes]], *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 name: str = "") -> Iterator[RawRecord | ReadError]:
    """All records of one WARC, each once, in file order as far as the readers allow.

    fastwarc reads first, warcio re-reads what fastwarc cannot (ARC files, its parse errors), then
    the salvage pass reads on from the last record delivered: it reports a cut last record and
    recovers records after damaged regions. Each unreadable region is one ReadError.

    `open_stream()` opens the input afresh; if it takes a `start` keyword it is used to reopen at
    a byte offset (else the stream is seeked or read forward). `max_record_bytes` bounds what the
    salvage pass buffers per record. Raises NotWarcError for an empty file or one that holds no
    WARC/ARC record at all (`name` labels it in the message).
    """
    opener = _Opener(open_stream)
    label = name or "input"
    stream = opener.open(0)
    try:
        head = stream.read(SNIFF_BYTES)
    except BaseException:
        stream.close()
        raise
    kind = sniff_format(head)
    if kind in ("empty", "unknown"):
        stream.close()
    if kind == "empty":
        raise NotWarcError(f"{label}: empty file (0 bytes)")
    parsers = {"warc": (_fastwarc_records, _warcio_records), "compressed": (_fastwarc_records, _warcio_records),
               "arc": (_warcio_records,), "unknown": ()}[kind]
    delivered = _Delivered()
    failures: list[str] = []
    held: RawRecord | None = None  # yielded only once its parser has read past it
    for i, parser in enumerate(parsers):
        source = Prefixed(head, stream) if i == 0 else opener.open(0)
        held = None  # a record the failed parser was on is decided again by the next reader
        delivered.start_pass(0)
        try:
            for rec in parser(source):
                if delivered.seen(delivered.key(rec)):
                    continue
                rec = _materialized(rec, max_record_bytes)
                if held is not None:
                    delivered.add(held)
                    yield held
                held = rec
            failures.clear()
            break
        except InputError:
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - damaged input; fastwarc's Rust panics are BaseException
            failures.append(f"{parser.__name__.strip('_').split('_')[0]}: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            source.close()
    if kind in ("arc", "compressed"):  # the salvage pass reads WARC in gzip or plain only
        if held is not None:
            delivered.add(held)
            yield held
        if failures:
            yield ReadError(offset=delivered.last_offset, message="; ".join(failures))
        return
    start = held.offset if held is not None else max(delivered.last_offset, 0)
    if failures:
        log.warning("%s: %s; salvaging from byte %d", label, "; ".join(failures), start)
    # A file that shows no WARC header at its start is a WARC only if the salvage pass finds a
    # record or damage (not just bytes that hold no record): until then its gaps wait.
    waiting: list[salvage.Gap] = []
    for item in _salvage(opener, start, head.startswith(salvage.GZIP_MAGIC), delivered, max_record_bytes):
        if kind == "unknown" and not delivered.count and isinstance(item, salvage.Gap) and item.junk:
            waiting.append(item)
            continue
        for gap in waiting:
            yield ReadError(offset=gap.offset, message=gap.message)
        waiting.clear()
        kind = "warc"
        yield ReadError(offset=item.offset, message=item.message) if isinstance(item, salvage.Gap) else item
    if kind == "unknown":
        raise NotWarcError(f"{label}: not a WARC or ARC file (no record found; it starts with {head[:32]!r})")


def _salvage(opener: _Opener, start: int, gzipped: bool, delivered: _Delivered,
             max_record_bytes: int) -> Iterator[RawRecord | ReadError | salvage.Gap]:
    """Records from byte `start` on that were not delivered yet, and a Gap per damaged region."""
    expected = salvage.GZIP_MAGIC if gzipped else b"WARC/"
    stream = opener.open(start)
    try:
        first = stream.read(len(expected)) if start else b""
        if start and first != expected:  # not a record start (a multi-record gzip member): from the top
            stream.close()
            start, first = 0, b""
            stream = opener.open(0)
        delivered.start_pass(start)
        replay = first

        def read(n: int) -> bytes:
            nonlocal replay
            if replay:
                data, replay = replay, b""
                return data
            return stream.read(n)

        keep = max_record_bytes + salvage.HEADER_MAX
        events = salvage.inflate(read, start, keep) if gzipped else salvage.plain_events(read, start)
        for item in salvage.RecordSplitter(events, max_record_bytes):
            if isinstance(item, salvage.Gap):
                yield item
                continue
            if delivered.seen(item.field(b"WARC-Record-ID") or f"@{item.offset}"):
                continue
            rec = _reparse(item, max_record_bytes)
            if isinstance(rec, RawRecord):
                delivered.add(rec)
                if item.repaired:
                    log.warning("record %s at byte %d: Content-Length %s does not fit; cut at the next record",
                                rec.record_id, rec.offset, item.field(b"Content-Length") or "missing")
            yield rec
    finally:
        stream.close()


def _reparse(rec: salvage.SalvagedRecord, max_record_bytes: int) -> RawRecord | ReadError:
    """A salvaged record as a RawRecord: fastwarc (warcio if it refuses) re-reads a clean copy
    whose header lines end in CRLF and whose Content-Length is the block's true length."""
    block = rec.block
    if "application/http" in rec.field(b"Content-Type").lower():
        block = _crlf_http_head(block)
    lines = [line for line in re.split(rb"\r?\n", rec.header) if not line.lower().startswith(b"content-length:")]
    clean = b"\r\n".join(lines + [b"Content-Length: %d" % len(block)]) + b"\r\n\r\n" + block + b"\r\n\r\n"
    errors = []
    for parser in (_fastwarc_records, _warcio_records):
        try:
            raw = next(parser(io.BytesIO(clean)), None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the record itself is unparsable
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if raw is not None:
            raw.offset = rec.offset
            if rec.length > len(rec.block):  # over the cap: only the block's start was kept
                raw.content_length += rec.length - len(rec.block)
            return _materialized(raw, max_record_bytes)
    return ReadError(offset=rec.offset, message=f"record {rec.field(b'WARC-Record-ID') or '?'} at byte {rec.offset} "
                                                f"cannot be parsed: {'; '.join(errors) or 'no record'}")


def _crlf_http_head(block: bytes) -> bytes:
    """HTTP status line and headers with CRLF line ends (a block whose CRLFs became LFs)."""
    end = re.search(rb"\r?\n\r?\n", block[: salvage.HEADER_MAX])
    if end is None:
        return block
    head = block[: end.start()]
    if not re.search(rb"(?<!\r)\n", head) and end.group() == b"\r\n\r\n":
        return block
    return re.sub(rb"\r?\n", b"\r\n", head) + b"\r\n\r\n" + block[end.end():]
