"""Rows are the same whatever runs them: 1, 2 or 8 local workers, or the Ray engine."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, run_cli
from harbor_hooks import export_traces

sys.path.insert(0, str(ROOT / "bench"))
from make_job import make_job  # noqa: E402


def canonical(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["source_path"], r["trace_source"] != "main",
                                       r["trace_source"], int(r["episode"].split("-")[1])))


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    return make_job(tmp_path_factory.mktemp("engines") / "job", 300)


def test_workers_give_identical_rows_and_bytes(job, tmp_path):
    outputs = {}
    for workers in (1, 2, 8):
        out = tmp_path / f"w{workers}.parquet"
        run_cli("traces", "export", "-p", str(job), "-o", str(out), "--workers", str(workers),
                check=True)
        outputs[workers] = out
    first = pq.read_table(outputs[1]).to_pylist()
    assert len(first) > 1000
    for workers in (2, 8):
        assert pq.read_table(outputs[workers]).to_pylist() == first
        assert outputs[workers].read_bytes() == outputs[1].read_bytes()


def test_ray_engine_matches_local(job, tmp_path):
    pytest.importorskip("ray.data", reason="the [ray] extra is not installed")
    local = tmp_path / "local.parquet"
    run_cli("traces", "export", "-p", str(job), "-o", str(local), check=True)
    expected = canonical(pq.read_table(local).to_pylist())
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    out = tmp_path / "ray.parquet"
    proc = run_cli("traces", "export", "-p", str(job), "--engine", "ray", "--workers", "2",
                   "-o", str(out), env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Exported {len(expected)} rows" in proc.stdout
    assert pq.read_table(out).to_pylist() == pq.read_table(local).to_pylist()  # in the same order
    # the same job read through fsspec (a file:// URL, as s3:// or gs:// would be)
    url_out = tmp_path / "ray-url.parquet"
    proc = run_cli("traces", "export", "-p", f"file://{job}", "--engine", "ray", "--workers", "2",
                   "-o", str(url_out), env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert canonical(pq.read_table(url_out).to_pylist()) == expected
    # --incremental: a store made by the local engine serves the Ray engine (and back)
    inc = tmp_path / "inc.parquet"
    run_cli("traces", "export", "-p", str(job), "-o", str(inc), "--incremental", check=True)
    proc = run_cli("traces", "export", "-p", str(job), "--engine", "ray", "--workers", "2",
                   "-o", str(inc), "--incremental", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--incremental: 0 trials read, 300 reused" in proc.stdout + proc.stderr
    assert inc.read_bytes() == local.read_bytes()


def test_ray_engine_publishes_like_the_local_engine(job, tmp_path):
    """--engine ray goes through the same orchestrator: with --splits, --dedupe and --push
    it writes the same rows and pushes the same repo and card as the local engine."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from local_hub import LocalHub
    from test_push import card, hub_env, load_from_hub

    with LocalHub(tmp_path / "hub") as hub:
        env = {**hub_env(hub, tmp_path), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        outputs, pushed, cards = {}, {}, {}
        for engine in ("local", "ray"):
            out = tmp_path / f"{engine}.parquet"
            proc = run_cli("traces", "export", "-p", str(job), "--engine", engine, "--workers", "2",
                           "--splits", "--dedupe", "--push", "--repo", f"me/{engine}", "-o", str(out),
                           env=env, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert "filtered out: --dedupe=" in proc.stdout
            outputs[engine] = {s: pq.read_table(tmp_path / f"{engine}-{s}.parquet").to_pylist()
                               for s in ("success", "failure")}
            pushed[engine] = load_from_hub(env, f"me/{engine}")
            front, body = card(hub, f"me/{engine}")
            assert f"- `engine`: `{engine}`" in body  # the card lists the options used
            cards[engine] = (front["harbor_hooks"], body.replace(f"# {engine}\n", "# repo\n")
                             .replace(f"- `engine`: `{engine}`", "- `engine`: ..."))
    assert outputs["ray"] == outputs["local"] and len(outputs["local"]["success"]) > 0
    assert pushed["ray"] == pushed["local"] == outputs["local"]
    assert cards["ray"] == cards["local"]


LOADED_MODULES = """
import sys
from harbor_hooks.cli import main
sys.argv = ["harbor-hooks", *sys.argv[1:]]
try:
    main()
finally:
    print("loaded:", " ".join(sorted(m for m in ("numpy", "pandas", "datasets") if m in sys.modules)))
"""


@pytest.mark.parametrize("output,loaded", [("x.parquet", ""), ("x.jsonl", ""),
                                           ("dir", "datasets numpy pandas")])
def test_local_export_loads_pyarrow_alone(job, tmp_path, output, loaded):
    """A local export to a file goes from Python rows to Arrow to the file: no numpy (pyarrow
    loads it at once otherwise, a third of the start-up), and the rows are still the same;
    a save_to_disk folder needs datasets, with numpy."""
    import subprocess

    out = tmp_path / output
    proc = subprocess.run([sys.executable, "-c", LOADED_MODULES, "traces", "export", "-p", str(job),
                           "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == f"loaded: {loaded}"
    from datasets import load_dataset, load_from_disk

    rows = (load_from_disk(str(out)) if output == "dir" else
            load_dataset(output.split(".")[1].replace("jsonl", "json"), data_files=str(out),
                         split="train"))
    # the Python API, in this process: pyarrow with numpy, rows through datasets
    assert rows.to_list() == export_traces(str(job)).to_list()
