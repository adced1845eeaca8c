"""Last-resort WARC reading: the records after damage where fastwarc and warcio stop.

What real files suffer: downloads cut short, bits flipped in transit, bytes inserted between gzip
members, gzip members cut in the middle, records whose Content-Length is wrong (line endings
rewritten from CRLF to LF). The strict parsers stop at the first problem; this reader
resynchronises instead:

* gzip layer (`inflate`): members are decompressed one at a time. A corrupt member, a member cut
  short, or bytes that are not a member at all become one `Gap` each, and reading resumes at the
  next plausible gzip member header.
* WARC layer (`RecordSplitter`): a record ends at its Content-Length when that lands on a record
  boundary; otherwise at the next WARC header line, so a wrong Content-Length loses nothing. A
  record interrupted by a gap or by the end of the file is reported as a `Gap`, never delivered.

Everything streams: memory is bounded by the maximum record size, not by the file size.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

GZIP_MAGIC = b"\x1f\x8b\x08"
PADDING = b"\r\n\t \x00"
READ_SIZE = 1 << 20
INFLATE_IN = 1 << 16
INFLATE_OUT = 1 << 20
HEADER_MAX = 64 << 10  # longest WARC header block we accept (fastwarc's default is 32 KiB)
BLOCK_PREFIX = 64 << 10  # bytes kept of a record over the size cap (its HTTP headers)
TAIL_WINDOW = 4 << 20  # of a record over the cap, the bytes checked for where it really ends
SCAN_TAIL = 256  # bytes kept between scans so a header split across reads is still found
# "WARC/1.0" (or 1.1, 0.17, 0.18) at a line start, then a header field: the start of a record.
HEADER_START = re.compile(rb"(?:(?<=\n)|\A)WARC/(?:1\.[01]|0\.1[0-9])\r?\n[A-Za-z][A-Za-z0-9_-]*:")
HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Gap:
    """An unreadable region: `offset` is the file byte where readable data stopped. `junk` marks
    bytes that are readable but hold no WARC record (as opposed to a corrupt or cut member/record)."""

    offset: int
    message: str
    junk: bool = False


@dataclass
class SalvagedRecord:
    """One record cut out of the stream: raw header lines and its block (or the block's start)."""

    offset: int  # file offset of the record, or of the gzip member holding its start
    header: bytes  # "WARC/1.0" line and fields, without the blank line
    block: bytes  # the whole block, or its first BLOCK_PREFIX bytes when `length` is over the cap
    length: int  # true block length
    repaired: bool  # the block was cut at the next header because Content-Length did not fit

    def field(self, name: bytes) -> str:
        return header_field(self.header, name)


def header_field(header: bytes, name: bytes) -> str:
    """Value of a WARC header field (case-insensitive), '' when absent."""
    match = re.search(rb"(?im)^" + re.escape(name) + rb"[ \t]*:[ \t]*(.*?)[ \t]*\r?$", header)
    return match.group(1).decode("utf-8", "replace") if match else ""


def _solid(data: bytes | bytearray) -> int:
    """Bytes that are not padding (whitespace, NUL): what counts as unreadable content."""
    return len(bytes(data).strip(PADDING))


@dataclass
class _Piece:
    data: bytes
    origin: int  # gzip: offset of the member; plain: offset of data[0]
    plain: bool


@dataclass
class _MemberEnd:
    origin: int


Event = _Piece | _MemberEnd | Gap


# ---------------------------------------------------------------- gzip / plain byte layer

class _Source:
    """Raw bytes from the stream with their file offset; keeps what may have to be re-scanned."""

    def __init__(self, read: Callable[[int], bytes], start: int) -> None:
        self.read, self.buf, self.pos, self.eof = read, bytearray(), start, False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.read(READ_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def drop(self, n: int) -> None:
        del self.buf[:n]
        self.pos += n


def plain_events(read: Callable[[int], bytes], start: int) -> Iterator[Event]:
    """An uncompressed WARC as pieces tagged with their file offsets."""
    pos = start
    while chunk := read(READ_SIZE):
        yield _Piece(chunk, pos, True)
        pos += len(chunk)


def inflate(read: Callable[[int], bytes], start: int, keep_limit: int) -> Iterator[Event]:
    """Decompressed content of consecutive gzip members, with a Gap wherever one is unreadable.

    `keep_limit` bounds the compressed bytes kept to re-scan a member that turns out corrupt.
    """
    src = _Source(read, start)
    while True:
        while len(src.buf) < len(GZIP_MAGIC) and src.fill():
            pass
        if not src.buf:
            return
        if not src.buf.startswith(GZIP_MAGIC):
            at = src.pos
            skipped = _skip_to_member(src)
            if skipped:
                yield Gap(at, f"{skipped} bytes at byte {at} are not a gzip member", junk=True)
            continue
        member = src.pos
        decomp = zlib.decompressobj(31)
        fed = 0
        try:
            while not decomp.eof:
                if fed == len(src.buf) and not src.fill():
                    # Cut short, or corrupt in a way inflate accepted until the end: if members
                    # follow inside what it swallowed, they are read again.
                    src.drop(1 if src.pos == member else 0)
                    _skip_to_member(src)
                    cause = "it is corrupt (later members follow)" if src.buf else "the file is truncated"
                    yield Gap(member, f"the gzip member at byte {member} does not end: {cause}")
                    break
                chunk = bytes(src.buf[fed:fed + INFLATE_IN])
                fed += len(chunk)
                out = decomp.decompress(chunk, INFLATE_OUT)
                while True:
                    if out:
                        yield _Piece(out, member, False)
                    if not decomp.unconsumed_tail or decomp.eof:
                        break
                    out = decomp.decompress(decomp.unconsumed_tail, INFLATE_OUT)
                if fed > keep_limit and not decomp.eof:  # a huge member: stop keeping it for re-scans
                    src.drop(fed)
                    fed = 0
        except zlib.error as exc:
            yield Gap(member, f"the gzip member at byte {member} is corrupt ({exc})")
            src.drop(1 if src.pos == member else 0)  # re-scan from the member's second byte
            _skip_to_member(src)
            continue
        if decomp.eof:
            src.drop(fed - len(decomp.unused_data))
            yield _MemberEnd(member)


def _skip_to_member(src: _Source) -> int:
    """Drop bytes up to the next plausible gzip member header; returns how many of the dropped
    bytes were not padding."""
    skipped = 0
    while True:
        i = src.buf.find(GZIP_MAGIC)
        while i != -1:
            while len(src.buf) < i + 10 and src.fill():
                pass
            if plausible_member_header(bytes(src.buf[i: i + 10])):
                skipped += _solid(src.buf[:i])
                src.drop(i)
                return skipped
            i = src.buf.find(GZIP_MAGIC, i + 1)
        keep = min(len(src.buf), len(GZIP_MAGIC) - 1)
        skipped += _solid(src.buf[: len(src.buf) - keep])
        src.drop(len(src.buf) - keep)
        if not src.fill():
            skipped += _solid(src.buf)
            src.drop(len(src.buf))
            return skipped


def plausible_member_header(head: bytes) -> bool:
    """Could these 10 bytes start a gzip member? Magic and method, no reserved flag bits, an
    extra-flags value zlib-style writers use (0, 2, 4): random bytes pass about once in 10^10."""
    return len(head) == 10 and head.startswith(GZIP_MAGIC) and not head[3] & 0xE0 and head[8] in (0, 2, 4)


# ---------------------------------------------------------------- WARC record layer

class _Interrupted(Exception):
    """The data stopped (a gap or the end of the file) before what was being read was complete."""


class RecordSplitter:
    """Cut WARC records out of a byte stream that may contain gaps and wrong Content-Lengths.

    Yields each record once it is complete (and, inside gzip, once its member passed the CRC
    check) and one `Gap` per unreadable region, in file order.
    """

    def __init__(self, events: Iterator[Event], max_block: int) -> None:
        self.events = events
        self.max_block = max_block
        self.buf = bytearray()
        self.spans: list[tuple[int, int, bool]] = []  # (index in buf, origin, plain) of each piece
        self.gap: Gap | None = None
        self.gap_reported = False  # the gap already explained a lost record
        self.eof = False
        self.ended: set[int] = set()  # gzip members whose end (and CRC) has been seen
        self.pending: SalvagedRecord | None = None  # complete, waiting for its member's CRC
        self.pending_member: int | None = None
        self.out: list[SalvagedRecord | Gap] = []

    # -- buffer
    def _pull(self) -> bool:
        """Append the next piece of data; False at a gap or at the end of the file."""
        if self.gap is not None or self.eof:
            return False
        for event in self.events:
            if isinstance(event, _Piece):
                self.spans.append((len(self.buf), event.origin, event.plain))
                self.buf += event.data
                return True
            if isinstance(event, _MemberEnd):
                self.ended.add(event.origin)
                if self.pending is not None and self.pending_member == event.origin:
                    self._release()
                continue
            self.gap = event
            if self.pending is not None and self.pending_member == event.offset:
                rec, self.pending = self.pending, None
                self._unreliable(rec)
            return False
        self.eof = True
        return False

    def _ensure(self, n: int) -> bool:
        while len(self.buf) < n:
            if not self._pull():
                return False
        return True

    def _consume(self, n: int) -> None:
        del self.buf[:n]
        head: tuple[int, int, bool] | None = None
        rest = []
        for idx, origin, plain in self.spans:
            if idx <= n:
                head = (0, origin + (n - idx) if plain else origin, plain)
            else:
                rest.append((idx - n, origin, plain))
        self.spans = ([head] if head else []) + rest

    def _span(self, i: int) -> tuple[int, int, bool]:
        found = (0, 0, True)
        for span in self.spans:
            if span[0] > i:
                break
            found = span
        return found

    def _offset(self, i: int = 0) -> int:
        """File offset of buf[i] (for gzip: of the member holding it)."""
        idx, origin, plain = self._span(i)
        return origin + (i - idx) if plain else origin

    def _member(self, i: int) -> int | None:
        _, origin, plain = self._span(i)
        return None if plain else origin

    def _release(self) -> None:
        if self.pending is not None:
            self.out.append(self.pending)
            self.pending = None

    def _complete(self, rec: SalvagedRecord, last_byte: int) -> None:
        """A record is cut (buf[last_byte] is its last byte): deliver it once its gzip member has
        passed its CRC check."""
        self._deliver(rec, self._member(last_byte))

    def _deliver(self, rec: SalvagedRecord, member: int | None) -> None:
        self._release()
        if member is None or member in self.ended:
            self.out.append(rec)
        elif self.gap is not None and self.gap.offset == member:  # its member already failed
            self._unreliable(rec)
        else:
            self.pending, self.pending_member = rec, member

    def _unreliable(self, rec: SalvagedRecord) -> None:
        """A cut record whose gzip member then failed: reported in place of the gap."""
        assert self.gap is not None
        self.out.append(Gap(rec.offset, f"record {rec.field(b'WARC-Record-ID') or '?'} at byte {rec.offset} "
                                        f"is unreliable: {self.gap.message}"))
        self.gap_reported = True

    # -- records
    def __iter__(self) -> Iterator[SalvagedRecord | Gap]:
        while True:
            junk_at, junk = self._offset(), self._seek_header()
            if self.buf:
                try:
                    if junk:
                        self.out.append(Gap(junk_at, f"{junk} bytes at byte {junk_at} are not WARC records", junk=True))
                    self._read_record()
                except _Interrupted as exc:
                    self.out.append(Gap(self._offset(), str(exc)))
                    self.gap_reported = True
                    self._consume(len(self.buf))
            elif junk and self.gap is None:  # junk right before a gap is part of that damage
                self.out.append(Gap(junk_at, f"{junk} bytes at byte {junk_at} are not WARC records", junk=True))
            if self.gap is not None:  # met while reading or looking ahead: report it once
                if not self.gap_reported:
                    self.out.append(self.gap)
                self.gap, self.gap_reported = None, False
                self.buf.clear()
                self.spans.clear()
            elif self.eof and not self.buf:
                self._release()
            yield from self.out
            self.out.clear()
            if self.eof and not self.buf:
                return

    def _seek_header(self) -> int:
        """Drop bytes before the next record header (or all contiguous data if there is none);
        returns how many of them were not padding."""
        junk = 0
        while True:
            match = HEADER_START.search(self.buf)
            if match is not None:
                junk += _solid(self.buf[: match.start()])
                self._consume(match.start())
                return junk
            keep = min(len(self.buf), SCAN_TAIL)
            junk += _solid(self.buf[: len(self.buf) - keep])
            self._consume(len(self.buf) - keep)
            if not self._pull():
                junk += _solid(self.buf)
                self._consume(len(self.buf))
                return junk

    def _read_record(self) -> None:
        offset = self._offset()
        end = self._find(HEADER_END, 0, HEADER_MAX)
        if end is None:
            if len(self.buf) >= HEADER_MAX:  # not a header after all: skip its first byte, re-scan
                self._consume(1)
                return
            raise _Interrupted(f"the record header at byte {offset} is cut off: {self._why()}")
        header = bytes(self.buf[: end.start()])
        block_start = end.end()
        what = f"record {header_field(header, b'WARC-Record-ID') or '?'} at byte {offset}"
        length: int | None
        try:
            length = int(header_field(header, b"Content-Length"))
        except ValueError:
            length = None
        prefix, skipped = None, 0
        if length is not None and length > self.max_block:
            # Over the cap: keep the start (the HTTP headers), stream past all but the block's
            # tail, where the usual end-of-block checks run.
            self._ensure(block_start + BLOCK_PREFIX)
            prefix = bytes(self.buf[block_start: block_start + min(BLOCK_PREFIX, length)])
            skipped = length - min(self.max_block, TAIL_WINDOW)
            self._skip(block_start + skipped, what, length)
            block_start, length = 0, length - skipped
        block_end, next_start, repaired = self._block_end(block_start, length, header, what, skipped)
        block = prefix if prefix is not None else bytes(self.buf[block_start:block_end])
        rec = SalvagedRecord(offset, header, block, skipped + block_end - block_start, repaired)
        self._complete(rec, max(block_end - 1, 0))
        self._consume(next_start)

    def _block_end(self, block_start: int, length: int | None, header: bytes, what: str,
                   skipped: int) -> tuple[int, int, bool]:
        """Where the block ends and the next record may start (buffer indexes), and whether
        Content-Length had to be overruled. Raises _Interrupted if the data stops first."""
        limit = block_start + (length if length is not None and length >= 0 else self.max_block)
        self._ensure(limit + 16)
        if length is not None and len(self.buf) >= limit and (self._boundary_at(limit) or self._terminated_at(limit)):
            return limit, limit, False
        # Content-Length does not end on a record boundary: cut at the next record header instead.
        nxt = self._find(HEADER_START, block_start, self.max_block)
        if nxt is not None:
            return block_start + len(bytes(self.buf[block_start: nxt.start()]).rstrip(b"\r\n")), nxt.start(), True
        have = len(self.buf) - block_start
        if self.gap is None and ((length is not None and have >= length) or not self.eof):
            # The block is all there but not followed by a header within the cap (or before the
            # end): Content-Length (or the cap) decides, what follows is counted as junk.
            return limit, limit, length is None
        rewritten = b"\r\n" not in header and self.buf.endswith(b"\n\n")
        if self.gap is None and (self._member(len(self.buf) - 1) in self.ended or rewritten):
            # The last record, short of its Content-Length, in a gzip stream that ended cleanly
            # (the data is whole) or with an LF-only header and a record end (line endings were
            # rewritten, so Content-Length counts bytes that are gone): not a cut file.
            return block_start + len(bytes(self.buf[block_start:]).rstrip(PADDING)), len(self.buf), True
        total = "?" if length is None else skipped + length
        raise _Interrupted(f"{what} is incomplete after {skipped + have} of {total} bytes: {self._why()}")

    def _skip(self, n: int, what: str, length: int) -> None:
        """Drop the next n bytes of data (streaming: nothing is kept)."""
        done = 0
        while done < n:
            if not self.buf and not self._pull():
                raise _Interrupted(f"{what} is incomplete after about {done} of {length} bytes: {self._why()}")
            step = min(n - done, len(self.buf))
            self._consume(step)
            done += step

    def _why(self) -> str:
        return self.gap.message if self.gap is not None else "the file ends (truncated)"

    def _boundary_at(self, i: int) -> bool:
        """Does a record end at buf[i]: padding, then the next header or the end of the data?"""
        rest = bytes(self.buf[i: i + 16]).lstrip(PADDING)
        if len(rest) >= 5 or not b"WARC/".startswith(rest):
            return rest.startswith(b"WARC/")
        # The data stops after padding (and maybe the start of a header): at the end of the file,
        # or where a gzip member ended cleanly (a gap after it belongs to the next member).
        return (self.eof and self.gap is None and not rest) or (i > 0 and self._member(i - 1) in self.ended)

    def _terminated_at(self, i: int) -> bool:
        """Is the block followed by the CRLF CRLF that ends a record? Then Content-Length is right
        and what comes after is junk, not part of this record."""
        return bytes(self.buf[i: i + 4]) == b"\r\n\r\n"

    def _find(self, pattern: re.Pattern[bytes], start: int, span: int) -> re.Match[bytes] | None:
        """First match of `pattern` starting in buf[start:start+span] (it may run past the span),
        pulling data as needed."""
        stop = start + span
        scanned = start
        while True:
            match = pattern.search(self.buf, scanned, stop + SCAN_TAIL)
            if match is not None or len(self.buf) >= stop + SCAN_TAIL:
                return match if match is not None and match.start() <= stop else None
            scanned = max(start, len(self.buf) - SCAN_TAIL)
            if not self._pull():
                match = pattern.search(self.buf, scanned)
                return match if match is not None and match.start() <= stop else None
