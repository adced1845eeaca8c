"""A real two-node Ray cluster on loopback: jobs go through `ray job submit`; a worker killed with
SIGKILL mid-run and a driver killed mid-run change nothing in the final outputs.

Only the cluster this test starts is stopped, by the PIDs of its own processes (never `ray stop`,
which would stop every Ray of the user, the test session's own included)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(temp_dir: str, port: int) -> list[int]:
    """Processes of this cluster: those naming its temp dir or port, and all their descendants."""
    pids, parent_of = [], {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
            parent_of[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if temp_dir in cmd or f":{port}" in cmd or cwd.startswith(temp_dir):
            pids.append(int(entry))
    mine = set(pids)
    grew = True
    while grew:
        children = {pid for pid, parent in parent_of.items() if parent in mine and pid not in mine}
        grew = bool(children)
        mine |= children
    return sorted(mine)


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dashboard, client = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]

    def own_ports() -> list[str]:  # Ray's agents default to fixed ports: two nodes on one machine collide
        return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]

    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=true",
                        f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
                        f"--ray-client-server-port={client}", *common, *own_ports()], env=env, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common, *own_ports()], env=env, check=True,
                       capture_output=True, timeout=120)
        yield {"address": f"http://127.0.0.1:{dashboard}", "env": env, "temp_dir": temp_dir}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _cluster_pids(temp_dir, port):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)


def _config(tmp: Path, shared: Path, name: str, shared_filesystem: bool = True) -> Path:
    """Both nodes run on this machine, so a local output path is one shared disk (declared)."""
    inputs = [str(p) for p in sorted((shared / "bench").glob("realweb-*.warc.gz"))]
    cfg = {"run": {"name": name, "progress": False},
           "input": {"paths": inputs}, "filters": {"language": {}, "gopher": {}, "fineweb": {}, "minhash": {}},
           "dedup": {"near": {"partitions": 2}}, "tokenizer": {"vocab_size": 1000, "train_sample_bytes": 2_000_000},
           "shards": {"target_tokens": 400_000},
           "output": {"path": str(tmp / name), "shared_filesystem": shared_filesystem}}
    path = tmp / f"{name}.json"  # JSON is YAML
    path.write_text(json.dumps(cfg))
    return path


def _submit(cluster, config: Path, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [RAY, "job", "submit", "--address", cluster["address"], "--working-dir", str(REPO)]
    cmd += [] if wait else ["--no-wait"]
    cmd += ["--", sys.executable, "pipeline/run.py", "--config", str(config)]
    for _ in range(30):  # right after `ray start` the job agent may not be up yet
        result = subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=600)
        if "No available agent" not in result.stdout + result.stderr:
            return result
        time.sleep(1)
    return result


def _fingerprint(out: Path) -> tuple:
    docs = sorted(r[0] for r in duckdb.sql(f"select doc_id from '{out}/curated/*.parquet'").fetchall())
    tokens = sorted(duckdb.sql(f"select doc_id, input_ids from '{out}/tokens/shard-*.parquet'").fetchall())
    manifest = json.loads((out / "tokens/manifest.json").read_text())
    return docs, tokens, [(s["file"], s["docs"], s["tokens"]) for s in manifest["shards"]], manifest["tokenizer_sha256"]


def _worker_pids(cluster) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except (OSError, ValueError):
            continue
        if cmd.startswith(b"ray::process_warc") and cwd.startswith(cluster["temp_dir"]):
            pids.append(int(entry))
    return pids


def _driver_pids(config: Path) -> list[int]:
    """Processes running `pipeline/run.py --config <config>` (a job's driver)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            args = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"pipeline/run.py" in args and str(config).encode() in args:
            pids.append(int(entry))
    return pids


def _wait_for(predicate, timeout: float = 120.0, interval: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def test_local_output_on_a_multi_node_cluster_is_refused(cluster, shared_data, tmp_path):
    config = _config(tmp_path, shared_data, "scattered", shared_filesystem=False)
    result = _submit(cluster, config)
    output = result.stdout + result.stderr
    assert "output.shared_filesystem" in output and "2 nodes" in output and "s3://" in output, output[-3000:]
    assert not (tmp_path / "scattered" / "stats").exists()  # refused before any work


def test_sigkilled_worker_and_killed_driver_change_nothing(cluster, shared_data, tmp_path):
    base = _submit(cluster, _config(tmp_path, shared_data, "undisturbed"))
    assert "succeeded" in base.stdout + base.stderr, base.stdout[-3000:] + base.stderr[-3000:]
    expected = _fingerprint(tmp_path / "undisturbed")
    assert expected[0] and expected[1]

    # 1. SIGKILL a worker while it runs a WARC task: Ray retries the task, the job succeeds.
    config = _config(tmp_path, shared_data, "killed-worker")
    job = subprocess.Popen([RAY, "job", "submit", "--address", cluster["address"], "--working-dir", str(REPO), "--",
                            sys.executable, "pipeline/run.py", "--config", str(config)],
                           env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = _wait_for(lambda: _worker_pids(cluster))[0]
    os.kill(victim, signal.SIGKILL)
    output, _ = job.communicate(timeout=600)
    assert "succeeded" in output, output[-3000:]
    assert _fingerprint(tmp_path / "killed-worker") == expected

    # 2. SIGKILL the driver mid-run (as an OOM kill would), then submit again: the rerun completes
    # the directory. The kill comes as soon as the first input is done: a WARC task takes about a
    # second, and `ray job stop` (a CLI round trip, then a grace period) let every input finish first.
    config = _config(tmp_path, shared_data, "killed-driver")
    _submit(cluster, config, wait=False)
    stats_dir = tmp_path / "killed-driver" / "stats"
    _wait_for(lambda: stats_dir.exists() and [p for p in stats_dir.glob("*.json") if not p.name.startswith(".")],
              interval=0.01)
    for pid in _driver_pids(config):
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not _driver_pids(config))  # really gone: two drivers on one directory would race
    assert not (tmp_path / "killed-driver" / "run.json").exists()
    rerun = _submit(cluster, config)
    assert "succeeded" in rerun.stdout + rerun.stderr, rerun.stdout[-3000:]
    assert _fingerprint(tmp_path / "killed-driver") == expected
    resume = json.loads((tmp_path / "killed-driver" / "run.json").read_text())["resume"]
    assert resume["annotate_inputs_reused"] >= 1 and resume["annotate_tasks_run"] >= 1  # a real resume


def test_dedup_on_two_nodes_matches_the_reference_for_1_2_8_partitions(cluster, shared_data, tmp_path):
    """The distributed dedup stage as a job on the two-node cluster: the same removals, survivors
    and curated text for 1, 2 and 8 partitions, equal to the single-process reference."""
    from tests.dedup_reference import reference_dedup
    from tests.test_dedup_scale import outcome, scale_corpus

    files = scale_corpus(shared_data, tmp_path / "corpus")
    cmd = [RAY, "job", "submit", "--address", cluster["address"], "--working-dir", str(REPO), "--",
           sys.executable, "-m", "tests.dedup_job", "--out", str(tmp_path / "out"), "--partitions", "1", "2", "8", "--files", *files]
    for _ in range(30):
        result = subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=600)
        if "No available agent" not in result.stdout + result.stderr:
            break
        time.sleep(1)
    assert "succeeded" in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    outcomes = [outcome(tmp_path / "out" / f"p{p}") for p in (1, 2, 8)]
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][0] == reference_dedup(files, max_repeats=3)
