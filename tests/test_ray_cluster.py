"""A real two-node Ray cluster on 127.0.0.1 (`ray start --head`, then a second `ray start
--address` node with its own resources) reading trials from s3:// URLs served by moto's S3
server on 127.0.0.1: rows identical to the local engine's (from the local copy and from
the same URLs), and tasks run on both nodes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_cli

pytest.importorskip("ray")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
RAY = shutil.which("ray") or str(Path(sys.executable).parent / "ray")

sys.path.insert(0, str(ROOT / "bench"))
from make_job import make_job  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    _, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # fsspec's config from the env
    job = make_job(tmp_path_factory.mktemp("s3") / "job", 256)  # both formats, four tasks
    import s3fs

    fs = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=env["FSSPEC_S3_ENDPOINT_URL"])
    fs.mkdir("jobs")
    fs.put(str(job), "jobs/job", recursive=True)
    yield env, job
    server.stop()


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    env, _ = s3
    port = free_port()
    # Ray's token authentication, its default for `ray start --head`, on every node and driver
    env["RAY_AUTH_MODE"] = "token"
    full = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 << 20),
              "--disable-usage-stats"]
    head = subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                           "--resources", '{"node_a": 1}', *common], env=full, capture_output=True, text=True)
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        second = subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"node_b": 1}',
                                 *common], env=full, capture_output=True, text=True)
        assert second.returncode == 0, second.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True)


def test_two_node_cluster_from_s3_matches_the_local_engine(s3, cluster, tmp_path):
    env, job = s3
    local = tmp_path / "local.jsonl"
    run_cli("traces", "export", "-p", str(job), "-o", str(local), check=True)
    from_s3 = tmp_path / "local-s3.jsonl"
    run_cli("traces", "export", "-p", "s3://jobs/job", "-o", str(from_s3), env=env, check=True)
    on_ray, report = tmp_path / "ray.jsonl", tmp_path / "report.json"
    proc = run_cli("traces", "export", "-p", "s3://jobs/job", "--engine", "ray", "--ray-address", cluster,
                   "-o", str(on_ray), "--report", str(report), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = read_jsonl(local)
    assert len(expected) > 500
    assert read_jsonl(from_s3) == expected  # the local engine reads the URLs too
    assert read_jsonl(on_ray) == expected
    nodes = json.loads(report.read_text())["ray_tasks_per_node"]
    assert len(nodes) == 2 and sum(nodes.values()) == 4, nodes  # both nodes ran tasks
