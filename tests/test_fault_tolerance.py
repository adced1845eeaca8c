"""Job-level fault tolerance: an input whose task keeps dying, or whose server keeps failing past
the retries, is reported and not marked done; the other inputs finish, and a rerun completes the
directory with outputs identical to an undisturbed run (global stages redone to include it)."""
from __future__ import annotations

import functools
import http.server
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bench.common import descendants as _descendants
from pipeline.run import run_pipeline
from tests.run_outputs import output_fingerprint, sample_config, sample_inputs, temporaries

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def undisturbed(ray_session, tmp_path_factory):
    """Inputs a and b and the fingerprint of an undisturbed run over them."""
    inputs = sample_inputs(tmp_path_factory.mktemp("in"), ["a", "b"])
    out = tmp_path_factory.mktemp("undisturbed")
    run_pipeline(sample_config(inputs, out))
    return inputs, output_fingerprint(out)


class OutageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, answering 503 to the first `outages[path]` requests of a path."""

    outages: dict[str, int] = {}

    def do_GET(self) -> None:
        if self.outages.get(self.path, 0) > 0:
            self.outages[self.path] -= 1
            self.send_error(503, "outage")
            return
        super().do_GET()

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture()
def flaky_server(undisturbed):
    """(base URL, outages) of a loopback server for the undisturbed run's input directory."""
    inputs, _ = undisturbed
    OutageHandler.outages = {}
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(OutageHandler, directory=str(inputs[0].parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", OutageHandler.outages
    httpd.shutdown()
    httpd.server_close()


def _writes_documents_of(pid: int, stem: str) -> bool:
    """Whether worker `pid` is running process_warc on input `stem` (it holds the temporary file
    that becomes documents/<stem>.parquet open)."""
    try:
        if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::process_warc"):
            return False
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any("/documents/.tmp-" in t and t.endswith(f"-{stem}.parquet") for t in targets)


class WorkerKiller(threading.Thread):
    """SIGKILLs every Ray worker of this test process that runs process_warc on input `stem`."""

    def __init__(self, stem: str) -> None:
        super().__init__(daemon=True)
        self.stem, self.kills, self.stop = stem, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in _descendants(os.getpid()):
                if _writes_documents_of(pid, self.stem):
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
            time.sleep(0.01)


def test_task_killed_on_every_attempt_fails_alone_and_rerun_completes(undisturbed, tmp_path):
    inputs, expected = undisturbed
    out = tmp_path / "out"
    cfg = sample_config(inputs, out)
    killer = WorkerKiller("b")
    killer.start()
    try:
        first = run_pipeline(cfg)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.kills >= 2  # Ray retried the task after its worker was SIGKILLed, then gave up
    files = {f["stem"]: f for f in first["files"]}
    assert files["a"]["status"] == "ok"
    assert files["b"]["status"] == "failed" and files["b"]["errors"] == {"task_error": 1}
    assert not (out / "stats/b.json").exists() and not (out / "documents/b.parquet").exists()  # not done
    assert first["stages"]["tokenize"]["total_docs"] == first["totals"]["kept"]  # over a's documents
    assert first["resume"]["temporaries_removed"] >= 1 and temporaries(out) == []  # killed attempts' files

    rerun = run_pipeline(cfg)
    assert rerun["resume"]["annotate_tasks_run"] == 1 and rerun["resume"]["stages_reused"] == []
    assert {f["stem"]: f["status"] for f in rerun["files"]} == {"a": "ok", "b": "ok"}
    assert output_fingerprint(out) == expected


def test_input_failing_past_io_retries_is_redone_by_rerun(undisturbed, flaky_server, tmp_path):
    inputs, expected = undisturbed
    base, outages = flaky_server
    outages.update({"/a.warc.gz": 2, "/b.warc.gz": 3})  # a: within the 2 retries; b: an outage beyond them
    urls = [f"{base}/{path.name}" for path in inputs]
    out = tmp_path / "out"
    cfg = sample_config(urls, out, "input.retries=2", "input.retry_backoff_s=0.01")
    first = run_pipeline(cfg)
    assert outages == {"/a.warc.gz": 0, "/b.warc.gz": 0}  # every planned 503 was served
    files = {f["stem"]: f for f in first["files"]}
    assert files["a"]["status"] == "ok" and files["a"]["kept"] > 0
    assert files["b"]["status"] == "failed" and sum(files["b"]["errors"].values()) == 1

    rerun = run_pipeline(cfg)  # the server is back: only b runs, and the global stages include it
    assert rerun["resume"]["annotate_tasks_run"] == 1 and rerun["resume"]["stages_reused"] == []
    assert {f["stem"]: f["status"] for f in rerun["files"]} == {"a": "ok", "b": "ok"}
    assert output_fingerprint(out) == expected
    assert run_pipeline(cfg)["resume"]["stages_reused"] == ["dedup", "tokenizer", "tokenize"]  # now complete
