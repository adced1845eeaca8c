"""Deterministic damage for WARC files: what real crawls and transfers do to them."""
from __future__ import annotations

import gzip
import random
from pathlib import Path


def gzip_members(data: bytes) -> list[int]:
    """Byte offsets where gzip members start (a member per record, as CC writes them)."""
    offsets, pos = [], 0
    while True:
        pos = data.find(b"\x1f\x8b\x08", pos)
        if pos == -1:
            return offsets
        offsets.append(pos)
        pos += 3


def damage(source: Path, out_dir: Path, seed: int = 0) -> list[Path]:
    """Write damaged variants of `source` into `out_dir`; returns their paths."""
    rng = random.Random(seed)
    data = source.read_bytes()
    members = [m for m in gzip_members(data) if m > 0] or [len(data) // 2]
    variants = {
        "truncated-a": data[: rng.randrange(len(data) // 4, len(data) // 2)],
        "truncated-b": data[: rng.randrange(len(data) // 2, len(data) - 10)],
        "garbage-between-members": data[: members[len(members) // 2]] + bytes(rng.randrange(256) for _ in range(777))
        + data[members[len(members) // 2]:],
        "member-cut-midstream": data[: members[len(members) // 3] - 40] + data[members[len(members) // 3]:],
        "zero-length": b"",
        "not-a-warc": b"<html><body>this is a web page, not a WARC file</body></html>\n" * 50,
        "gzip-of-text": gzip.compress(b"just some text\n" * 1000),
    }
    for i in range(3):
        flipped = bytearray(data)
        for _ in range(5):
            position = rng.randrange(len(flipped))
            flipped[position] ^= 1 << rng.randrange(8)
        variants[f"bitflips-{i}"] = bytes(flipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in variants.items():
        path = out_dir / f"{source.name.split('.')[0]}-{name}.warc.gz"
        path.write_bytes(content)
        paths.append(path)
    dangling = out_dir / f"{source.name.split('.')[0]}-dangling-link.warc.gz"
    dangling.symlink_to(out_dir / "does-not-exist.warc.gz")
    paths.append(dangling)
    return paths
