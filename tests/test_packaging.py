"""The wheel is complete: built offline from the tracked files and installed alone, it builds the
demo WARC from its own package data (outside the repo, from another directory) and finds its shipped
models; and every git-tracked data file under pipeline/ and filters/ is inside it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from pipeline.sample import load_manifest, write_sample

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "filters")

# Run by the installed copy: where its modules and data live and what its reader sees in the WARC.
PROBE = """
import json, sys
import filters, pipeline
from filters.models import resolve_model
from pipeline.inputs.warc import ReadError, iter_records
warc = sys.argv[1]
records = list(iter_records(lambda: open(warc, "rb")))
print(json.dumps({
    "modules": [pipeline.__file__, filters.__file__],
    "models": [str(resolve_model(name)) for name in ("sieve-quality", "sieve-nsfw", "sieve-hate")],
    "types": [r.record_type for r in records if not isinstance(r, ReadError)],
    "read_errors": [r.message for r in records if isinstance(r, ReadError)],
}))
"""


def _tracked_files() -> list[str]:
    """Paths git tracks under the two packages (skip outside a git checkout, e.g. an sdist)."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", *PACKAGES, "pyproject.toml",
                                 "README.md"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}): cannot tell which files are tracked")
    return [p for p in listed.stdout.decode().split("\0") if p]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built with the venv's setuptools (no build isolation, no index: offline) from a copy
    of the tracked files only, so a gitignored build/ or a locally built sample cannot leak in."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for relative in _tracked_files():
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, src / relative)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(root / "dist"), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (found,) = (root / "dist").glob("sieve-*.whl")
    return found


def test_every_tracked_data_file_is_in_the_wheel(wheel: Path) -> None:
    data_files = {p for p in _tracked_files() if p.startswith(tuple(f"{pkg}/" for pkg in PACKAGES))
                  and not p.endswith(".py")}
    assert len(data_files) > 50  # the sample pages with their manifest and README, the model files
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert sorted(data_files - names) == []
    assert not [n for n in names if n.startswith("pipeline/sample_data/")]  # built output is never shipped


def test_installed_wheel_alone_builds_the_sample_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                                "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's copy only, never the repo

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    # The default output is under the current directory (where configs/sample.yaml looks for it),
    # not inside the installed package.
    run("-m", "pipeline.sample")
    warc = work / "pipeline" / "sample_data" / "sample.warc.gz"
    assert warc.is_file()
    assert not (site / "pipeline" / "sample_data").exists()

    probe = json.loads(run("-c", PROBE, str(warc)).stdout)
    assert all(Path(m).resolve().is_relative_to(site.resolve()) for m in probe["modules"] + probe["models"])
    manifest = load_manifest()  # the checkout's manifest: what the installed build must hold
    with_request = sum(p.request for p in manifest.pages)
    assert probe["read_errors"] == []
    assert Counter(probe["types"]) == {"warcinfo": 1, "request": with_request, "metadata": with_request,
                                       "response": sum(p.kind != "revisit" for p in manifest.pages),
                                       "revisit": sum(p.kind == "revisit" for p in manifest.pages)}
    # Every page file came along unchanged: the build is byte-identical to the checkout's.
    write_sample(from_checkout := tmp_path / "checkout.warc.gz", force=True)
    assert warc.read_bytes() == from_checkout.read_bytes()
