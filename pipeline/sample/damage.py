"""Damaged WARC files made from a good one, deterministically from a seed: what transfers, disks
and broken writers do to real crawls, to test that the pipeline survives and counts them.

    python -m pipeline.sample.damage SOURCE.warc.gz OUT_DIR [--seed N] [--max-record-bytes N]

Each variant comes with what a reader must make of it (`Damaged`): the record ids it must still
deliver (their bytes are untouched), how many damaged regions it must report, or that the file
as a whole must fail. The layout of the source is established independently of Sieve's reader:
fastwarc lists the records and zlib confirms that each gzip member holds exactly one record.

Kinds: `truncated` (cut inside a record at a random offset), `bitflips` (one bit flipped in each
of a few random gzip members), `garbage` (random bytes between two members), `member-cut` (the
tail of a member removed mid-stream, the next member follows), `oversize` (an extra HTML response
larger than the maximum record size), and whole-file cases: `empty` (zero bytes), `not-warc` (an
HTML page), `gzip-not-warc` (gzip of plain text), `unopenable` (a dangling symlink).
"""
from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.sample import warc_record

GZIP_MAGIC = b"\x1f\x8b\x08"
GZIP_TRAILER = 8  # CRC32 + ISIZE
OVERSIZE_ID_NAMESPACE = uuid.UUID("6f1d7e0c-2b7a-4c55-9a52-0d8e1f6c9b31")


@dataclass
class Span:
    """One record of the source: its bytes are data[start:end] (one gzip member when gzipped)."""

    start: int
    end: int
    record_id: str
    record_type: str


@dataclass
class Damaged:
    """A damaged file and what a correct reader must report for it."""

    path: Path
    kind: str
    source: Path
    intact_ids: list[str] = field(default_factory=list)  # must be delivered, each once
    damaged_regions: int = 0  # ReadErrors a reader must report
    fails: str | None = None  # the whole file must fail with this stats reason
    oversize_id: str | None = None  # the extra record over the size cap (kind `oversize`)


def record_spans(data: bytes) -> list[Span] | None:
    """The records of a WARC and their byte spans, or None if the file is not cleanly laid out
    (a parse error, or gzip members that do not hold exactly one record each)."""
    from fastwarc.warc import ArchiveIterator

    starts: list[tuple[int, str, str]] = []
    try:
        for rec in ArchiveIterator(io.BytesIO(data), parse_http=False):
            starts.append((rec.stream_pos, rec.record_id or "", str(rec.record_type).split(".")[-1]))
    except BaseException:  # noqa: BLE001 - a source fastwarc cannot read is not clean
        return None
    if not starts or starts[0][0] != 0 or any(not rid for _, rid, _ in starts):
        return None
    ends = [s for s, _, _ in starts[1:]] + [len(data)]
    spans = [Span(s, e, rid, rtype) for (s, rid, rtype), e in zip(starts, ends)]
    if is_gzip(data) and not all(_one_member(data[sp.start: sp.end]) for sp in spans):
        return None
    if any(sp.end - sp.start < 32 for sp in spans):
        return None
    return spans


def is_gzip(data: bytes) -> bool:
    return data.startswith(GZIP_MAGIC)


def _one_member(chunk: bytes) -> bool:
    """Is `chunk` exactly one complete gzip member holding one WARC record?"""
    if not chunk.startswith(GZIP_MAGIC):
        return False
    decomp = zlib.decompressobj(31)
    try:
        content = decomp.decompress(chunk)
    except zlib.error:
        return False
    return decomp.eof and not decomp.unused_data and content.startswith(b"WARC/")


def deflate_start(member: bytes) -> int:
    """Where the deflate data of a gzip member begins: after the fixed header and the optional
    extra, name, comment and header-CRC fields (flipping bits there may go unnoticed)."""
    flags, pos = member[3], 10
    if flags & 4:  # FEXTRA
        pos += 2 + int.from_bytes(member[pos:pos + 2], "little")
    for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            pos = member.index(b"\0", pos) + 1
    return pos + (2 if flags & 2 else 0)  # FHCRC


def _rng(seed: int, source: Path, kind: str) -> random.Random:
    return random.Random(f"{seed}:{source.name}:{kind}")


def truncated(data: bytes, spans: list[Span], rng: random.Random) -> tuple[bytes, list[str], int]:
    """Cut inside a random record after the first (past its first 16 bytes, so the cut file still
    shows what it is): the records before it stay, the cut one is lost."""
    victim = rng.randrange(1, len(spans)) if len(spans) > 1 else 0
    span = spans[victim]
    cut = rng.randrange(span.start + 16, span.end - GZIP_TRAILER - 1)
    return data[:cut], [s.record_id for s in spans[:victim]], 1


def bitflips(data: bytes, spans: list[Span], rng: random.Random, members: int = 3) -> tuple[bytes, list[str], int]:
    """Flip one bit inside the compressed data of a few members (gzip's CRC must catch each)."""
    victims = sorted(rng.sample(range(len(spans)), min(members, len(spans))))
    flipped = bytearray(data)
    for i in victims:
        span = spans[i]
        # Not the gzip header (harmless fields) and not the deflate stream's last byte (its
        # padding bits are ignored by inflate): everything in between is checked by the CRC.
        first = span.start + deflate_start(data[span.start: span.end])
        position = rng.randrange(first, span.end - GZIP_TRAILER - 1)
        flipped[position] ^= 1 << rng.randrange(8)
    intact = [s.record_id for i, s in enumerate(spans) if i not in victims]
    return bytes(flipped), intact, len(victims)


def garbage_between_members(data: bytes, spans: list[Span], rng: random.Random) -> tuple[bytes, list[str], int]:
    """Random bytes inserted at a member boundary: no record lost, one unreadable region."""
    at = spans[rng.randrange(1, len(spans))].start if len(spans) > 1 else len(data)
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(100, 2000)))
    junk = junk.replace(GZIP_MAGIC, b"GZ!")  # no fake member start inside the junk
    return data[:at] + b"X" + junk + data[at:], [s.record_id for s in spans], 1


def member_cut(data: bytes, spans: list[Span], rng: random.Random) -> tuple[bytes, list[str], int]:
    """The second part of one member removed mid-stream; the next member follows directly."""
    victim = rng.randrange(len(spans))
    span = spans[victim]
    cut = rng.randrange(span.start + deflate_start(data[span.start: span.end]), span.end - GZIP_TRAILER - 1)
    intact = [s.record_id for i, s in enumerate(spans) if i != victim]
    return data[:cut] + data[span.end:], intact, 1


def oversize_record(seed: int, size: int) -> tuple[bytes, str]:
    """An uncompressed HTML response record whose payload is `size` bytes."""
    record_id = f"<urn:uuid:{uuid.uuid5(OVERSIZE_ID_NAMESPACE, f'{seed}:{size}')}>"
    paragraph = b"<p>An enormous page that no pipeline should hold in memory at once.</p>\n"
    body = b"<html><body>" + paragraph * (size // len(paragraph) + 1)
    body = body[:size]
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body)
    headers = [("WARC-Record-ID", record_id), ("WARC-Date", "2024-01-01T00:00:00Z"),
               ("WARC-Target-URI", f"http://oversize.example/{seed}"),
               ("Content-Type", "application/http; msgtype=response")]
    return warc_record("response", headers, http + body), record_id


def with_oversize(data: bytes, spans: list[Span], rng: random.Random, seed: int,
                  max_record_bytes: int) -> tuple[bytes, list[str], str]:
    """The source with an extra record over the cap inserted between two records."""
    record, record_id = oversize_record(seed, max_record_bytes + rng.randrange(1000, 5000))
    if is_gzip(data):
        record = gzip.compress(record, compresslevel=6, mtime=0)
    at = spans[rng.randrange(1, len(spans))].start if len(spans) > 1 else len(data)
    ids = [s.record_id for s in spans]
    return data[:at] + record + data[at:], ids + [record_id], record_id


RECORD_KINDS = ("truncated", "oversize", "bitflips", "garbage", "member-cut")
GZIP_KINDS = ("bitflips", "garbage", "member-cut")
WHOLE_FILE_KINDS = ("empty", "not-warc", "gzip-not-warc", "unopenable")


def damage_variants(source: Path, out_dir: Path, seed: int = 0, *, max_record_bytes: int = 1 << 20,
                    kinds: tuple[str, ...] = RECORD_KINDS + WHOLE_FILE_KINDS) -> list[Damaged]:
    """Write the damaged variants of `source` (of the given kinds) into `out_dir`; returns them
    with what a reader must make of each.

    Record-level kinds need a cleanly laid out source (see `record_spans`) and are skipped for
    others; the gzip kinds also need a gzip source. Whole-file kinds fit any source.
    """
    data = source.read_bytes()
    stem = source.name.removesuffix(".gz").replace(".", "_")
    out_dir.mkdir(parents=True, exist_ok=True)
    spans = record_spans(data) if set(kinds) & set(RECORD_KINDS) else None
    made: list[Damaged] = []

    def write(kind: str, content: bytes, **expect: object) -> None:
        suffix = ".warc.gz" if is_gzip(content) or kind == "gzip-not-warc" else ".warc"
        path = out_dir / f"{stem}-{kind}{suffix}"
        path.write_bytes(content)
        made.append(Damaged(path=path, kind=kind, source=source, **expect))  # type: ignore[arg-type]

    for kind in kinds:
        rng = _rng(seed, source, kind)
        if kind in RECORD_KINDS and (not spans or (kind in GZIP_KINDS and not is_gzip(data))):
            continue
        if kind == "oversize":
            content, intact, big_id = with_oversize(data, spans, rng, seed, max_record_bytes)
            write(kind, content, intact_ids=intact, oversize_id=big_id)
        elif kind in RECORD_KINDS:
            make = {"truncated": truncated, "bitflips": bitflips, "garbage": garbage_between_members,
                    "member-cut": member_cut}[kind]
            content, intact, regions = make(data, spans, rng)
            write(kind, content, intact_ids=intact, damaged_regions=regions)
        elif kind == "empty":
            write(kind, b"", fails="not_warc")
        elif kind == "not-warc":
            page = b"<!doctype html><html><body><p>A web page, not a WARC file.</p></body></html>\n"
            write(kind, page * rng.randrange(5, 50), fails="not_warc")
        elif kind == "gzip-not-warc":
            text = b"plain text, no WARC record here\n" * rng.randrange(10, 100)
            write(kind, gzip.compress(text, mtime=0), fails="not_warc")
        elif kind == "unopenable":
            dangling = out_dir / f"{stem}-{kind}.warc.gz"
            dangling.unlink(missing_ok=True)
            dangling.symlink_to(out_dir / f"{stem}-missing-target.warc.gz")
            made.append(Damaged(path=dangling, kind=kind, source=source, fails="open_error"))
        else:
            raise ValueError(f"unknown damage kind {kind!r} (known: {', '.join(RECORD_KINDS + WHOLE_FILE_KINDS)})")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sample.damage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a good WARC file")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-record-bytes", type=int, default=1 << 20,
                        help="the oversize variant's record is larger than this (use input.max_record_bytes)")
    parser.add_argument("--kinds", nargs="+", default=list(RECORD_KINDS + WHOLE_FILE_KINDS),
                        choices=RECORD_KINDS + WHOLE_FILE_KINDS)
    args = parser.parse_args(argv)
    for variant in damage_variants(args.source, args.out_dir, args.seed, max_record_bytes=args.max_record_bytes,
                                   kinds=tuple(args.kinds)):
        expect = f"fails as {variant.fails}" if variant.fails else \
            f"{len(variant.intact_ids)} intact records, {variant.damaged_regions} damaged regions"
        print(f"{variant.path}  [{variant.kind}] {expect}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
