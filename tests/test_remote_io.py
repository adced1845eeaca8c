"""Remote IO for real: https inputs from a local server that fails on purpose (503s, resets, slow
answers, stalls and dropped connections mid-body, with and without Range support, 404s), and
s3:// inputs and outputs through moto's S3 server on loopback. Outputs must equal a local run."""
from __future__ import annotations

import gzip
import http.server
import json
import logging
import random
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import storage
from pipeline.config import parse_config
from pipeline.inputs import warc
from pipeline.inputs.warc import InputError, RetryingHTTPStream, backoff_sleep, open_input, read_paths_listing
from pipeline.run import run_pipeline
from pipeline.sample.damage import damage_variants

SLOW_S = 1.0  # how long "slow" and "stall" faults hold a connection: beyond the client timeouts below
CLIENT_TIMEOUT_S = 0.3
SERVER_LIFETIME_S = 300  # the server shuts itself down after this, whatever happens to the test


class FaultyServer:
    """A threaded HTTP server on 127.0.0.1 serving in-memory files; each path can be given a list
    of faults for its successive requests: 503, 404, reset (no answer), slow (headers late),
    stall (half the body, then silence), drop (half the body, then the connection closes)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.no_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._watchdog = threading.Timer(SERVER_LIFETIME_S, self.stop)
        self._watchdog.daemon = True
        self._stopped = False

    def start(self) -> FaultyServer:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self, path: str, data: bytes, faults: list[str] = (), ranges: bool = True) -> str:
        self.files[path] = data
        self.faults[path] = list(faults)
        if not ranges:
            self.no_range.add(path)
        return self.url + path

    def _next_fault(self, path: str, range_header: str | None) -> str:
        with self._lock:
            self.requests.append((path, range_header))
            pending = self.faults.get(path, [])
            return pending.pop(0) if pending else "ok"

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
                    pass
                finally:
                    self.close_connection = True

            def _answer(self) -> None:
                fault = server._next_fault(self.path, self.headers.get("Range"))
                data = server.files.get(self.path)
                if data is None or fault == "404":
                    self.send_error(404)
                    return
                if fault == "503":
                    self.send_error(503, "try again later")
                    return
                if fault == "reset":
                    return
                if fault == "slow":
                    time.sleep(SLOW_S)
                start = 0
                asked = self.headers.get("Range")
                if asked and self.path not in server.no_range:
                    start = int(asked.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault in ("drop", "stall"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "stall":
                        time.sleep(SLOW_S)
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture()
def server():
    srv = FaultyServer().start()
    yield srv
    srv.stop()


def _payload(n: int = 3_000_000) -> bytes:
    return random.Random(0).randbytes(n)


# ---------------------------------------------------------------- the retrying stream

@pytest.mark.parametrize("ranges", [True, False], ids=["range", "no-range"])
def test_stream_survives_every_fault(server, ranges):
    data = _payload()
    url = server.serve("/f.bin", data, ["503", "reset", "drop", "slow", "stall", "drop"], ranges=ranges)
    # Without Range, a resumed download re-reads what it had: the stall and drop after the first
    # drop make no progress, so they count against the same budget of 4 consecutive failures.
    with RetryingHTTPStream(url, retries=4, backoff_s=0.01, timeout_s=CLIENT_TIMEOUT_S) as stream:
        assert stream.read() == data
        assert stream.reconnects == 3  # after each drop / stall mid-body
    resumed = [r for _, r in server.requests if r]
    assert len(server.requests) == 7 and len(resumed) == 4  # all requests after the first drop resume


def test_retries_are_bounded_and_the_error_says_why(server):
    url = server.serve("/busy.warc.gz", b"x", ["503"] * 10)
    with pytest.raises(InputError, match=r"busy\.warc\.gz.*after 3 attempts.*503"):
        RetryingHTTPStream(url, retries=2, backoff_s=0.01, timeout_s=CLIENT_TIMEOUT_S)
    assert len(server.requests) == 3


def test_permanent_errors_fail_fast(server):
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"gone\.warc\.gz.*404"):
        open_input(server.url + "/gone.warc.gz", retries=5, backoff_s=5.0, timeout_s=CLIENT_TIMEOUT_S)
    assert len(server.requests) == 1 and time.perf_counter() - started < 2.0  # no retry, no backoff


def test_backoff_is_exponential_with_full_jitter_and_a_cap(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(warc.time, "sleep", slept.append)
    random.seed(1)
    for attempt in (0, 3, 12):
        for _ in range(300):
            backoff_sleep(attempt, 0.5)
    first, fourth, late = slept[:300], slept[300:600], slept[600:]
    assert max(first) <= 0.5 and max(fourth) <= 4.0 and max(late) <= warc.MAX_BACKOFF_S
    assert 1.5 < sum(fourth) / 300 < 2.5  # uniform over [0, 4]: full jitter, not a fixed delay
    assert min(fourth) < 0.5 and max(fourth) > 3.5 and sum(late) / 300 > 20


def test_open_at_an_offset_with_and_without_range(server):
    data = _payload(200_000)
    for path, ranges in (("/r.bin", True), ("/n.bin", False)):
        url = server.serve(path, data, ["drop"], ranges=ranges)
        with open_input(url, start=123_456, retries=2, backoff_s=0.01, timeout_s=CLIENT_TIMEOUT_S) as fh:
            assert fh.read() == data[123_456:]
    assert ("/r.bin", "bytes=123456-") in server.requests


def test_paths_listing_over_https(server):
    lines = "".join(f"crawl-data/seg/{i}.warc.gz\n" for i in range(3))
    gz = server.serve("/warc.paths.gz", gzip.compress(lines.encode()), ["503", "drop"])
    plain = server.serve("/warc.paths", ("# comment\n" + lines).encode())
    expected = [f"https://data.example/crawl-data/seg/{i}.warc.gz" for i in range(3)]
    for listing in (gz, plain):
        assert read_paths_listing(listing, "https://data.example", retries=3, backoff_s=0.01,
                                  timeout_s=CLIENT_TIMEOUT_S) == expected


# ---------------------------------------------------------------- the whole job over https

def _settings(out: Path, **input_section: object) -> dict:
    return {"run": {"progress": False}, "filters": {"gopher": {}}, "dedup": {"enabled": False},
            "tokenizer": {"enabled": False}, "output": {"path": str(out)}, "input": input_section}


def _documents(out: str | Path, options: dict | None = None) -> list[tuple]:
    rows = []
    for path in storage.listdir(storage.join(str(out), "documents"), ".parquet", options):
        table = storage.read_parquet(path, ["doc_id", "url", "text"], options)
        rows += list(zip(*(table.column(c).to_pylist() for c in ("doc_id", "url", "text"))))
    return sorted(rows)


def _per_file(summary: dict) -> dict[str, tuple]:
    return {f["stem"]: (f["status"], f["records"], f["kept"], f["removed"], f["errors"]) for f in summary["files"]}


@pytest.mark.slow
def test_pipeline_over_faulty_https_equals_local_run(server, shared_data, ray_session, tmp_path):
    """A CC-style listing over https, files served with every fault (one without Range, one cut
    short so the salvage pass reopens it at an offset), a 404 among them: the documents and
    every file's accounting equal a run over the same files on local disk."""
    damaged = next(v.path for v in damage_variants(shared_data / "warc/other/dolma_wget_sample-0001.warc.gz",
                                                   tmp_path / "damaged", 3, kinds=("truncated",)))
    files = {"resiliparse.warc.gz": (shared_data / "warc/commoncrawl/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz",
                                     ["503", "drop", "stall"], True),
             "dolma.warc.gz": (shared_data / "warc/other/dolma_wget_sample-0000.warc.gz", ["reset", "slow", "drop"], False),
             "cut.warc.gz": (damaged, ["drop", "503"], True)}
    local_dir = tmp_path / "local-inputs"
    local_dir.mkdir()
    for name, (path, faults, ranges) in files.items():
        server.serve(f"/crawl/{name}", path.read_bytes(), faults, ranges=ranges)
        (local_dir / name).symlink_to(path)
    server.serve("/warc.paths.gz", gzip.compress("".join(f"crawl/{n}\n" for n in files).encode()), ["503"])
    remote = run_pipeline(parse_config(_settings(
        tmp_path / "remote", paths=[server.url + "/crawl/gone.warc.gz"], paths_listing=server.url + "/warc.paths.gz",
        base_url=server.url, retries=4, retry_backoff_s=0.01, timeout_s=CLIENT_TIMEOUT_S)))
    local = run_pipeline(parse_config(_settings(tmp_path / "local", paths=[str(local_dir / "*.warc.gz")])))

    gone = _per_file(remote).pop("gone")
    assert gone[0] == "failed" and gone[4] == {"open_error": 1}
    assert {k: v for k, v in _per_file(remote).items() if k != "gone"} == _per_file(local)
    assert _per_file(local)["cut"][4] == {"read_error": 1}  # the damage is seen the same way remotely
    assert _documents(tmp_path / "remote") == _documents(tmp_path / "local") != []
    resumed = [r for p, r in server.requests if p == "/crawl/resiliparse.warc.gz" and r]
    assert resumed  # the drop and the stall were resumed with Range requests, not restarted


# ---------------------------------------------------------------- s3:// through moto's server

@pytest.fixture()
def s3():
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per S3 call otherwise
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    try:
        host, port = srv.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"))  # state is per process
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="y",
                              region_name="us-east-1")
        client.create_bucket(Bucket="crawl")
        options = {"key": "x", "secret": "y", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        yield client, options
    finally:
        srv.stop()


@pytest.mark.slow
def test_s3_inputs_and_outputs_equal_a_local_run_and_resume(s3, shared_data, ray_session, tmp_path):
    client, options = s3
    damaged = next(v.path for v in damage_variants(shared_data / "warc/other/dolma_wget_sample-0000.warc.gz",
                                                   tmp_path / "damaged", 4, kinds=("member-cut",)))
    sources = [shared_data / "warc/commoncrawl/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz", damaged]
    for path in sources:
        client.put_object(Bucket="crawl", Key=f"in/{path.name}", Body=path.read_bytes())
    cfg = parse_config({**_settings(Path("unused"), paths=["s3://crawl/in/*.warc.gz", "s3://crawl/in/missing.warc.gz"],
                                    storage_options=options, retries=1, retry_backoff_s=0.01),
                        "output": {"path": "s3://crawl/out"}})
    summary = run_pipeline(cfg)
    local = run_pipeline(parse_config(_settings(tmp_path / "local", paths=[str(p) for p in sources])))

    missing = _per_file(summary).pop("missing")
    assert missing[0] == "failed" and missing[4] == {"open_error": 1}
    assert {k: v for k, v in _per_file(summary).items() if k != "missing"} == _per_file(local)
    assert _documents("s3://crawl/out", options) == _documents(tmp_path / "local") != []
    objects = {o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket="crawl", Prefix="out/")["Contents"]}
    stems = [p.name.removesuffix(".warc.gz") for p in sources]
    assert {"out/run.json", "out/config.json"} | {f"out/stats/{s}.json" for s in stems} \
        | {f"out/documents/{s}.parquet" for s in stems} <= set(objects)
    assert not [k for k in objects if "/.tmp-" in k]  # atomic writes left no temporaries

    again = run_pipeline(cfg)  # resume from S3: finished inputs are not redone (the failed one is retried)
    assert {**again["totals"], "task_seconds": 0} == {**summary["totals"], "task_seconds": 0}
    after = {o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket="crawl", Prefix="out/")["Contents"]}
    assert all(after[f"out/stats/{s}.json"] == objects[f"out/stats/{s}.json"] for s in stems)

    # refilter reads and writes through the same storage layer (its storage options honoured).
    from pipeline.refilter import refilter

    strict = refilter("s3://crawl/out", ["gopher.min_words=400", f"input.storage_options={json.dumps(options)}"],
                      "s3://crawl/strict")
    assert strict["resume"]["decide_tasks_run"] == len(sources) + 1
    assert 0 < strict["totals"]["kept"] < summary["totals"]["kept"]
    assert {d[0] for d in _documents("s3://crawl/strict", options)} < {d[0] for d in _documents("s3://crawl/out", options)}


def test_remote_store_open_retries_transient_errors_not_missing_files(monkeypatch):
    """fsspec stores (s3://, gs://): a flaky open is retried with backoff; a missing key is not."""
    calls: list[str] = []
    slept: list[float] = []
    real_open = warc.fsspec.open

    def flaky_open(path: str, mode: str, **options: object):
        calls.append(path)
        if path.endswith("flaky.warc.gz") and len(calls) < 3:
            raise ConnectionError("connection reset by peer")
        return real_open("memory://" + path.split("://", 1)[1], mode)

    monkeypatch.setattr(warc.fsspec, "open", flaky_open)
    monkeypatch.setattr(warc.time, "sleep", slept.append)
    with real_open("memory://bucket/flaky.warc.gz", "wb") as fh:
        fh.write(b"WARC/1.0\r\n")
    with open_input("s3://bucket/flaky.warc.gz", retries=3, backoff_s=0.5) as fh:
        assert fh.read() == b"WARC/1.0\r\n"
    assert len(calls) == 3 and len(slept) == 2
    with pytest.raises(InputError, match=r"missing\.warc\.gz: cannot open: FileNotFoundError"):
        open_input("s3://bucket/missing.warc.gz", retries=3, backoff_s=0.5)
    assert len(calls) == 4 and len(slept) == 2


@pytest.mark.slow
def test_dedup_spills_to_s3_and_equals_a_local_run(s3, shared_data, ray_session, tmp_path):
    """The dedup stage with its output (and so its spill files) on s3: the same removals, survivors
    and curated text as on local disk, and no spill left behind."""
    from pipeline import storage
    from pipeline.stages.dedup import run_dedup
    from tests.test_dedup_scale import outcome, scale_corpus
    from tests.test_dedup_stage import make_cfg

    client, options = s3
    files = scale_corpus(shared_data, tmp_path / "corpus")
    run_dedup(make_cfg(tmp_path / "local", 3), str(tmp_path / "local"), files)
    cfg = make_cfg("s3://crawl/dedup", 3)
    cfg.input.storage_options = options
    stats = run_dedup(cfg, "s3://crawl/dedup", files)
    assert stats["scale"]["bytes_spilled"] > 0
    removed = {r["doc_id"]: (r["reason"], r["survivor_id"]) for r in storage.read_parquet(
        "s3://crawl/dedup/dedup/removed.parquet", storage_options=options).to_pylist()}
    curated = sorted((r["doc_id"], r["text"]) for path in storage.listdir("s3://crawl/dedup/curated", ".parquet", options)
                     for r in storage.read_parquet(path, columns=["doc_id", "text"], storage_options=options).to_pylist())
    assert (removed, curated) == outcome(tmp_path / "local")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="crawl", Prefix="dedup/")["Contents"]]
    assert not [k for k in keys if "/work/" in k]
