"""Console noise: the errors of a damaged WARC are counted and written to OUT/logs/ with their
offsets; the console shows one line per input with the counts, and nothing of what the readers and
the Ray workers would otherwise print for each damaged block."""
from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.inputs.warc import ReadError, iter_records, open_input, unique_stems
from pipeline.sample import warc_record, write_sample
from pipeline.sample.damage import GZIP_TRAILER, damage_variants, deflate_start

REPO = Path(__file__).resolve().parents[1]
# Damaged members: a bit flipped in the CRC32 (the data inflates, the check fails at its end), a bit
# flipped in the middle of the deflate data, the second half cut off (the next member follows).
CRC_FLIPPED = (5, 120)
DATA_FLIPPED = (60, 180)
CUT = (30, 90, 150, 210)
_LETTERS = bytes((b"abcdefghijklmnopqrstuvwxyz      \n" * 8)[:256])


def big_damaged_warc(path: Path, records: int = 240, body_bytes: int = 40_000) -> Path:
    """A 6 MB WARC of text responses, one gzip member each, with 8 damaged members spread over it.

    From the first damaged member (its CRC check fails after the data inflated) warcio reads on to
    the end of the file block by block, and it wrote one stderr line for each 16 KB block: here
    ~360 lines, for a 1 GB Common Crawl file ~65,000.
    """
    rng = random.Random(0)
    members = []
    for i in range(records):
        body = rng.randbytes(body_bytes).translate(_LETTERS)
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
        record = warc_record("response", [("WARC-Record-ID", f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"),
                                          ("WARC-Date", "2024-01-01T00:00:00Z"),
                                          ("WARC-Target-URI", f"http://big.example/{i}"),
                                          ("Content-Type", "application/http; msgtype=response")], http + body)
        members.append(bytearray(gzip.compress(record, mtime=0)))
    for i in CRC_FLIPPED:
        members[i][-GZIP_TRAILER] ^= 0x10
    for i in DATA_FLIPPED:
        member = members[i]
        member[(deflate_start(bytes(member)) + len(member)) // 2] ^= 0x10
    for i in CUT:
        member = members[i]
        members[i] = member[: (deflate_start(bytes(member)) + len(member) - GZIP_TRAILER) // 2]
    path.write_bytes(b"".join(members))
    return path


def read_error_offsets(path: Path) -> list[int]:
    items = iter_records(lambda start=0: open_input(str(path), start=start), name=str(path))
    offsets = []
    for item in items:
        if isinstance(item, ReadError):
            offsets.append(item.offset)
        else:
            item.read_payload(1 << 20)
    return offsets


def test_reading_a_damaged_warc_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    warc = big_damaged_warc(tmp_path / "big.warc.gz")
    capfd.readouterr()
    offsets = read_error_offsets(warc)
    assert len(offsets) == len(CRC_FLIPPED) + len(DATA_FLIPPED) + len(CUT)  # one counted region per member
    assert capfd.readouterr().err == ""  # was ~360 "Error -3 while decompressing data" lines


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_run_on_damaged_warcs_prints_one_line_per_input(tmp_path: Path) -> None:
    big = big_damaged_warc(tmp_path / "big.warc.gz")
    clean = tmp_path / "sample.warc.gz"
    write_sample(clean, force=True)
    variants = {d.kind: d for d in damage_variants(clean, tmp_path / "damaged", seed=1,
                                                   kinds=("bitflips", "member-cut", "not-warc"))}
    damaged = [big] + [variants[kind].path for kind in ("bitflips", "member-cut", "not-warc")]
    inputs = [str(p) for p in [*damaged, clean]]
    out = tmp_path / "out"
    # A subprocess, so the console is what a user sees: Ray forwards its workers' output to it.
    done = subprocess.run([sys.executable, "-m", "pipeline.run", "--config", "configs/sample.yaml",
                           "--set", f"input.paths={json.dumps(inputs)}", "--output", str(out), "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    console = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [line for line in console if "process_warc pid=" in line]  # no worker line reached the console
    assert not [line for line in console if "decompressing" in line]
    assert len(console) < 50  # the summary table and one line per damaged input (was > 400 lines)

    stems = unique_stems(inputs)
    for path in inputs:
        stats = json.loads((out / "stats" / f"{stems[path]}.json").read_text())
        about = [line for line in console if path in line]
        if not stats["errors"]:
            assert about == []
            continue
        (line,) = about  # exactly one line per input with errors, with every count and where they are
        assert all(f"{n} {reason}" in line for reason, n in stats["errors"].items())
        assert str(out / "logs" / f"{stems[path]}.jsonl") in line
        assert (" failed: " in line) == (stats["status"] == "failed")
    assert "not_warc" in next(line for line in console if str(variants["not-warc"].path) in line)

    # Every read error is in logs/, each with its byte offset: the same regions the reader reports.
    for path in (big, variants["bitflips"].path, variants["member-cut"].path):
        expected = read_error_offsets(path)
        assert expected
        error_log = _jsonl(out / "logs" / f"{stems[str(path)]}.jsonl")
        assert sorted(e["offset"] for e in error_log if e["reason"] == "read_error") == sorted(expected)
        task_log = _jsonl(out / "logs" / "tasks" / f"{stems[str(path)]}.jsonl")
        assert sorted(e["offset"] for e in task_log if e.get("reason") == "read_error") == sorted(expected)
