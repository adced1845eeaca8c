"""WARC inputs: resolve paths/URLs/listings, open them as retrying streams, iterate records.

fastwarc reads the records; when it rejects a file (ARC, odd gzip layouts) or fails part-way,
warcio takes over from the first record fastwarc did not deliver, so a damaged file is read as far
as either parser can. Whatever neither can read becomes one counted `error(read_error)` entry:
nothing is dropped silently. Streams are never read whole into memory.
"""
from __future__ import annotations

import glob
import gzip
import io
import logging
import os
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from typing import IO, Any, Callable, Iterator

import fsspec

log = logging.getLogger("sieve.warc")

TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc", ".warc.zst", ".gz")


class InputError(Exception):
    """An input that cannot be opened or read at all (after retries)."""


# ---------------------------------------------------------------- resolving inputs

def resolve_inputs(paths: list[str], paths_listing: str | None = None, base_url: str = "",
                   limit: int | None = None, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Expand local globs, remote globs (s3://bucket/*.warc.gz) and a CC `warc.paths.gz` listing.

    URLs without wildcards are kept as given; a local path that matches nothing is an error (a
    typo should not silently produce an empty run).
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
        resolved.extend(read_paths_listing(paths_listing, base_url, storage_options))
    if limit is not None:
        resolved = resolved[:limit]
    return resolved


def read_paths_listing(listing: str, base_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Lines of a Common Crawl `warc.paths(.gz)` listing joined onto `base_url`."""
    if listing.startswith(("http://", "https://")):
        raw = read_url_bytes(listing)
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
    """File name without the WARC suffix: `CC-MAIN-...-00001.warc.gz` -> `CC-MAIN-...-00001`."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in WARC_SUFFIXES:
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

def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_HTTP
    return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, HTTPException, OSError))


def backoff_sleep(attempt: int, base_s: float) -> None:
    """Exponential backoff with full jitter (attempt 0 -> up to base_s)."""
    time.sleep(random.uniform(0, base_s * (2 ** attempt)))


def read_url_bytes(url: str, retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0) -> bytes:
    """GET a small resource (a listing) with retries."""
    with RetryingHTTPStream(url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s) as fh:
        return fh.read()


class RetryingHTTPStream(io.RawIOBase):
    """A forward-only HTTP(S) body stream that survives 5xx, timeouts and dropped connections.

    On a transient failure it reconnects with `Range: bytes=<position>-` and carries on, so the
    consumer sees one uninterrupted byte stream. A server that ignores Range (answers 200 instead
    of 206 on a resume) is handled by skipping the bytes already delivered.
    """

    def __init__(self, url: str, *, retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0) -> None:
        super().__init__()
        self.url, self.retries, self.backoff_s, self.timeout_s = url, retries, backoff_s, timeout_s
        self.position = 0
        self.reconnects = 0
        self._resp: Any = None
        self._open()

    def _open(self) -> None:
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                headers = {"User-Agent": "sieve/0.1 (+https://github.com/)"}
                if self.position:
                    headers["Range"] = f"bytes={self.position}-"
                resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout_s)
                if self.position and resp.status == 200:
                    _discard(resp, self.position)
                self._resp = resp
                return
            except BaseException as exc:  # noqa: BLE001 - classified below
                if not _is_transient(exc) or attempt == self.retries:
                    raise InputError(f"{self.url}: cannot open at byte {self.position}: {exc}") from exc
                last = exc
                log.warning("retrying %s at byte %d after %s (attempt %d)", self.url, self.position, exc, attempt + 1)
                backoff_sleep(attempt, self.backoff_s)
        raise InputError(f"{self.url}: {last}")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """fastwarc asks where the stream is (it panics on a stream without tell)."""
        return self.position

    def readinto(self, buffer: Any) -> int:
        for attempt in range(self.retries + 1):
            try:
                n = self._resp.readinto(buffer)
                if n == 0 and self._expected_more():
                    raise ConnectionError("connection closed before the end of the body")
                self.position += n
                return n
            except BaseException as exc:  # noqa: BLE001
                if not _is_transient(exc) or attempt == self.retries:
                    raise InputError(f"{self.url}: read failed at byte {self.position}: {exc}") from exc
                log.warning("reconnecting %s at byte %d after %s", self.url, self.position, exc)
                self.reconnects += 1
                self._close_resp()
                backoff_sleep(attempt, self.backoff_s)
                self._open()
        return 0

    def _expected_more(self) -> bool:
        length = self._resp.headers.get("Content-Length")
        if length is None:
            return False
        start = 0
        content_range = self._resp.headers.get("Content-Range")  # bytes a-b/total
        if content_range:
            start = int(content_range.split()[1].split("-")[0])
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


def _discard(resp: Any, n: int) -> None:
    while n > 0:
        chunk = resp.read(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("body ended while skipping already-read bytes")
        n -= len(chunk)


def open_input(path: str, *, storage_options: dict[str, Any] | None = None, retries: int = 5,
               backoff_s: float = 1.0) -> IO[bytes]:
    """A binary, streaming, forward-readable file object for a local path or URL."""
    if path.startswith(("http://", "https://")):
        return io.BufferedReader(RetryingHTTPStream(path, retries=retries, backoff_s=backoff_s), 1 << 20)
    if "://" not in path or path.startswith("file://"):
        try:
            return open(path.removeprefix("file://"), "rb")
        except OSError as exc:  # missing, a directory, a dangling link, no permission
            raise InputError(f"{path}: cannot open: {exc}") from exc
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            return fsspec.open(path, "rb", **(storage_options or {})).open()
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - remote store errors vary by backend
            last = exc
            if attempt < retries:
                backoff_sleep(attempt, backoff_s)
    raise InputError(f"{path}: cannot open: {last}")


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


def _warcio_records(stream: IO[bytes]) -> Iterator[RawRecord]:
    from warcio.archiveiterator import ArchiveIterator

    class QuietArchiveIterator(ArchiveIterator):
        INC_RECORD = ""  # warcio writes this warning straight to stderr; damage is counted by us

    it = QuietArchiveIterator(stream, arc2warc=True)
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
        stream_reader = rec.content_stream()
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


def iter_records(open_stream: Callable[[], IO[bytes]]) -> Iterator[RawRecord | ReadError]:
    """All records of one WARC, fastwarc first and warcio for what fastwarc cannot read.

    `open_stream` opens the input afresh (the fallback re-reads from the start and skips the
    records already delivered, matched by record id and offset). Ends with at most one ReadError.
    """
    seen_ids: set[str] = set()
    seen_offsets: set[int] = set()
    last_offset = -1
    errors: list[str] = []
    for parser in (_fastwarc_records, _warcio_records):
        stream = open_stream()
        try:
            for rec in parser(stream):
                if (rec.record_id in seen_ids) if rec.record_id else (rec.offset in seen_offsets):
                    continue
                seen_ids.add(rec.record_id)
                seen_offsets.add(rec.offset)
                last_offset = max(last_offset, rec.offset)
                yield rec
            return
        except InputError:
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - damaged input; fastwarc's Rust panics are BaseException
            errors.append(f"{parser.__name__.strip('_').split('_')[0]}: {type(exc).__name__}: {exc}")
        finally:
            stream.close()
    yield ReadError(offset=last_offset, message="; ".join(errors))
