"""Remote IO for real: https inputs through a local server that fails on purpose, s3:// inputs and
outputs through moto's S3 server on loopback. Outputs must equal a local run."""
from __future__ import annotations

import gzip
import http.server
import threading
import time

import duckdb
import pytest

from pipeline.config import parse_config
from pipeline.run import run_pipeline
from pipeline.warc import InputError, RetryingHTTPStream, read_paths_listing

pytestmark = pytest.mark.slow


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `files`; the first requests of each path fail in the configured way."""

    files: dict[str, bytes] = {}
    plan: dict[str, list[str]] = {}  # path -> actions for successive requests: 503, drop, slow, ok
    ranges = True
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        data = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        actions = self.plan.setdefault(self.path, [])
        action = actions.pop(0) if actions else "ok"
        if action == "503":
            self.send_error(503, "try later")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if action == "drop":  # half the body, then the connection dies
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if action == "slow":
            time.sleep(1.5)  # beyond the client's timeout in the test
        self.wfile.write(body)


@pytest.fixture()
def server():
    FlakyHandler.files, FlakyHandler.plan, FlakyHandler.requests, FlakyHandler.ranges = {}, {}, [], True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", FlakyHandler
    httpd.shutdown()
    httpd.server_close()


def test_stream_survives_503_drops_and_missing_range(server):
    base, handler = server
    payload = bytes(range(256)) * 4000
    handler.files["/f.bin"] = payload
    handler.plan["/f.bin"] = ["503", "drop", "503", "drop"]
    with RetryingHTTPStream(f"{base}/f.bin", retries=6, backoff_s=0.01, timeout_s=1.0) as fh:
        assert fh.read() == payload
    assert any(r for _, r in handler.requests)  # resumed with a Range request
    handler.ranges = False  # a server that ignores Range: the stream skips what it already has
    handler.plan["/f.bin"] = ["drop"]
    with RetryingHTTPStream(f"{base}/f.bin", retries=3, backoff_s=0.01, timeout_s=1.0) as fh:
        assert fh.read() == payload


def test_slow_server_times_out_then_succeeds(server):
    base, handler = server
    handler.files["/s.bin"] = b"x" * 1000
    handler.plan["/s.bin"] = ["slow"]
    with RetryingHTTPStream(f"{base}/s.bin", retries=2, backoff_s=0.01, timeout_s=0.5) as fh:
        assert fh.read() == b"x" * 1000


def test_permanent_errors_fail_fast(server):
    base, _ = server
    started = time.time()
    with pytest.raises(InputError, match="404"):
        RetryingHTTPStream(f"{base}/missing.warc.gz", retries=5, backoff_s=1.0)
    assert time.time() - started < 1.0  # a 404 is not retried


def _docs(out) -> list[tuple]:
    return sorted(duckdb.sql(f"select doc_id, url, text from '{out}/documents/*.parquet'").fetchall())


def test_pipeline_over_flaky_https_equals_local(server, shared_data, ray_session, tmp_path):
    base, handler = server
    names = ["resiliparse_warcfile_CC-MAIN-2020-34.warc.gz", "jwarc_cc.warc.gz"]
    for name in names:
        handler.files[f"/crawl/{name}"] = (shared_data / "warc/commoncrawl" / name).read_bytes()
        handler.plan[f"/crawl/{name}"] = ["503", "drop"]
    handler.files["/warc.paths.gz"] = gzip.compress("".join(f"crawl/{n}\n" for n in names).encode())
    assert read_paths_listing(f"{base}/warc.paths.gz", base) == [f"{base}/crawl/{n}" for n in names]
    common = {"run": {"progress": False}, "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
              "filters": {"language": {"allowed": []}}}
    remote = parse_config({**common, "input": {"paths_listing": f"{base}/warc.paths.gz", "base_url": base,
                                               "retries": 5, "retry_backoff_s": 0.01},
                           "output": {"path": str(tmp_path / "remote")}})
    local = parse_config({**common, "input": {"paths": [str(shared_data / "warc/commoncrawl" / n) for n in names]},
                          "output": {"path": str(tmp_path / "local")}})
    r, l_ = run_pipeline(remote), run_pipeline(local)
    assert r["totals"]["records"] == l_["totals"]["records"] and r["totals"]["kept"] == l_["totals"]["kept"] > 0
    assert [(u, t) for _, u, t in _docs(tmp_path / "remote")] == [(u, t) for _, u, t in _docs(tmp_path / "local")]
    # A missing file fails alone, with its reason; the other input completes.
    bad = parse_config({**common, "input": {"paths": [f"{base}/crawl/{names[1]}", f"{base}/crawl/gone.warc.gz"],
                                            "retries": 1, "retry_backoff_s": 0.01},
                        "output": {"path": str(tmp_path / "bad")}})
    summary = run_pipeline(bad)
    by_input = {f["input"].rsplit("/", 1)[1]: f for f in summary["files"]}
    assert by_input["gone.warc.gz"]["status"] == "failed" and by_input["gone.warc.gz"]["errors"] == {"open_error": 1}
    assert by_input[names[1]]["status"] == "ok" and by_input[names[1]]["kept"] == 1


def test_s3_inputs_and_outputs_via_moto_server(shared_data, ray_session, tmp_path):
    moto_server = pytest.importorskip("moto.server")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        s3.create_bucket(Bucket="crawl")
        name = "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"
        s3.put_object(Bucket="crawl", Key=f"in/{name}", Body=(shared_data / "warc/commoncrawl" / name).read_bytes())
        options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        cfg = parse_config({"run": {"progress": False}, "dedup": {"enabled": False}, "tokenizer": {"enabled": False},
                            "filters": {"language": {"allowed": []}},
                            "input": {"paths": ["s3://crawl/in/*.warc.gz"], "storage_options": options},
                            "output": {"path": "s3://crawl/out"}})
        summary = run_pipeline(cfg)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="crawl", Prefix="out/")["Contents"]}
        stem = name.removesuffix(".warc.gz")
        assert {f"out/documents/{stem}.parquet", f"out/stats/{stem}.json", "out/run.json", "out/report.html"} <= keys
        assert not any("/.tmp-" in k for k in keys)  # atomic writes left no temporaries
        assert summary["totals"]["records"] == 50 and summary["totals"]["kept"] > 0
        again = run_pipeline(cfg)  # resume from s3: nothing redone, same totals
        assert again["totals"] == summary["totals"]
    finally:
        server.stop()
