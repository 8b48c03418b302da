"""Pushes through the CLI (subprocesses) to a Hub-compatible server on 127.0.0.1, read back with datasets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ROOT, SAMPLE_JOB, run_cli
from local_hub import LocalHub

TOKEN = "hf_local_test_token"


@pytest.fixture
def hub(tmp_path):
    with LocalHub(tmp_path / "hub") as server:
        yield server


def hub_env(hub, tmp_path, token: str | None = TOKEN) -> dict:
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "HF_DATASETS_CACHE": str(tmp_path / "ds-cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "10",
           "HARBOR_HOOKS_PUSH_BACKOFF": "0.2"}
    if token:
        env["HF_TOKEN"] = token
    return env


def load_from_hub(env: dict, repo: str, revision: str | None = None) -> dict[str, list[dict]]:
    """datasets.load_dataset(repo) in a fresh interpreter (datasets reads HF_ENDPOINT at import)."""
    script = textwrap.dedent(f"""
        import json, datasets
        dd = datasets.load_dataset({repo!r}, revision={revision!r})
        print(json.dumps({{name: split.to_list() for name, split in dd.items()}}))
    """)
    import os
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def card(hub, repo: str, revision: str = "main") -> tuple[dict, str]:
    text = hub.read_file(repo, "README.md", revision=revision).decode()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_push_dataset_private_with_card(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    local = tmp_path / "local.parquet"
    proc = run_cli("traces", "export", "--sample", "-o", str(local), "--push", "--repo",
                   "org/traces", "--private", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "pushed 35 rows to org/traces" in proc.stdout
    assert hub.repo_state("org/traces")["private"] is True
    pushed = load_from_hub(env, "org/traces")
    assert list(pushed) == ["train"]
    assert pushed["train"] == pq.read_table(local).to_pylist()  # row for row, in order
    front, body = card(hub, "org/traces")
    assert front["license"] == "other" and "harbor" in front["tags"]
    assert front["harbor_hooks"]["splits"]["train"]["rows"] == 35
    assert front["dataset_info"]["splits"][0]["num_examples"] == 35
    assert "| train | 35 | 6 | 3 | 50.0% |" in body
    assert "5f0c3a9e-2b7d-4c1e-9a8f-0d1e2f3a4b5c" in body and "`openai/gpt-4o`" in body


def test_push_datasetdict_splits_and_revision(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    proc = run_cli("traces", "export", "--sample", "--episodes", "last", "--splits", "--push",
                   "--repo", "org/splits", "--revision", "v1", "--public", env=env)
    assert proc.returncode == 0, proc.stderr
    state = hub.repo_state("org/splits")
    assert state["private"] is False and "v1" in state["branches"]
    assert not [f for f in hub.list_files("org/splits") if f.endswith(".parquet")]  # main untouched
    pushed = load_from_hub(env, "org/splits", revision="v1")
    assert {k: len(v) for k, v in pushed.items()} == {"success": 6, "failure": 3}
    assert all(r["success"] for r in pushed["success"]) and not any(r["success"] for r in pushed["failure"])
    _, body = card(hub, "org/splits", revision="v1")
    assert "| success | 6 | 3 | 3 | 100.0% |" in body and "| failure | 3 | 3 | 0 | 0.0% |" in body


def test_private_by_default_public_on_request_and_huggingface_token(hub, tmp_path):
    """A push with no visibility flag creates a private repo (Harbor's would be public);
    --public opts out; HUGGINGFACE_TOKEN is read before HF_TOKEN, as Harbor does."""
    env = hub_env(hub, tmp_path, token=None)
    env["HUGGINGFACE_TOKEN"] = TOKEN
    env["HF_TOKEN"] = "hf_not_the_right_one"
    hub.users.update({TOKEN: "alice", "hf_not_the_right_one": "mallory"})
    proc = run_cli("traces", "export", "--sample", "--push", "--repo", "org/quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    state = hub.repo_state("org/quiet")
    assert state["private"] is True
    authors = {a for c in hub.store.history("dataset", "org/quiet", state["branches"]["main"]) for a in c["authors"]}
    assert authors == {"alice"}  # pushed with HUGGINGFACE_TOKEN
    proc = run_cli("traces", "export", "--sample", "--push", "--repo", "org/open", "--public", env=env)
    assert proc.returncode == 0, proc.stderr
    assert hub.repo_state("org/open")["private"] is False


def test_push_separate_repos(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    proc = run_cli("traces", "export", "--sample", "--separate", "--push", "--repo-success",
                   "org/ok", "--repo-failure", "org/ko", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(load_from_hub(env, "org/ok")["train"]) == 18
    assert len(load_from_hub(env, "org/ko")["train"]) == 17


def test_no_token_fails_before_any_work(hub, tmp_path):
    env = hub_env(hub, tmp_path, token=None)
    out = tmp_path / "never.parquet"
    proc = run_cli("traces", "export", "--sample", "-o", str(out), "--push", "--repo", "org/x",
                   env=env)
    assert proc.returncode == 2
    assert ("no Hugging Face token: pass --token, set HUGGINGFACE_TOKEN or HF_TOKEN, "
            "or log in once with `hf auth login`") in proc.stderr
    assert not out.exists() and not hub.requests
    proc = run_cli("traces", "export", "--sample", "--push", "--repo", "org/x", "--token", TOKEN,
                   env=env)
    assert proc.returncode == 0, proc.stderr


def test_repush_is_not_duplicated_and_append_adds(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    for _ in range(2):
        run_cli("traces", "export", "--sample", "--push", "--repo", "org/again", env=env, check=True)
    shards = [f for f in hub.list_files("org/again") if f.endswith(".parquet")]
    assert len(shards) == 1
    assert len(load_from_hub(env, "org/again")["train"]) == 35
    run_cli("traces", "export", "--sample", "--episodes", "last", "--push", "--repo", "org/again",
            "--append", env=env, check=True)
    assert len(load_from_hub(env, "org/again")["train"]) == 35 + 9
    run_cli("traces", "export", "--sample", "--episodes", "last", "--push", "--repo", "org/again",
            env=env, check=True)
    assert len(load_from_hub(env, "org/again")["train"]) == 9  # without --append: replaced


def test_transient_faults_are_retried(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    hub.fail_next(r"/commit/", 500, method="POST")
    hub.fail_next(r"/preupload/", 429, retry_after=1, method="POST")
    hub.drop_next(r"/api/repos/create", method="POST")
    proc = run_cli("traces", "export", "--sample", "--push", "--repo", "org/flaky", env=env)
    assert proc.returncode == 0, proc.stderr
    assert hub.injected_count() == 3
    assert "retry 1/" in proc.stderr
    assert len(load_from_hub(env, "org/flaky")["train"]) == 35


def test_permanent_fault_one_clear_line_and_local_output_kept(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    hub.fail_next(r"/commit/", 500, times=None, method="POST")
    local = tmp_path / "keep.parquet"
    proc = run_cli("traces", "export", "--sample", "-o", str(local), "--push", "--repo",
                   "org/down", env={**env, "HARBOR_HOOKS_PUSH_RETRIES": "2"})
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: push to org/down failed: HTTP 500"]
    assert "Traceback" not in proc.stderr
    assert pq.read_table(local).num_rows == 35
    assert f"harbor-hooks traces push {local} --repo org/down" in proc.stderr
    hub.clear_faults()
    proc = run_cli("traces", "push", str(local), "--repo", "org/down", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(load_from_hub(env, "org/down")["train"]) == 35


RUNNER = f"{sys.executable} {ROOT / 'tests' / 'fake_runner.py'} {{config}}"


def test_run_and_sweeps_push_end_to_end(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({
        "job_name": "e2e", "jobs_dir": str(tmp_path / "jobs"), "n_attempts": 1,
        "tasks": [{"path": "tasks/hello-world"}, {"path": "tasks/fix-git"}],
        "fake": {"rewards": {"hello-world": [0.0, 1.0], "fix-git": [1.0]}}}))
    proc = run_cli("run", "-c", str(config), "--runner-cmd", RUNNER, "--export-traces",
                   "--export-push", "--export-repo", "org/run", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(load_from_hub(env, "org/run")["train"]) == 2 * 4
    proc = run_cli("sweeps", "run", "-c", str(config), "--trials-per-task", "1", "--runner-cmd",
                   RUNNER, "--push", "--export-repo", "org/sweep", env=env)
    assert proc.returncode == 0, proc.stderr
    pushed = load_from_hub(env, "org/sweep")
    assert {k: len(v) for k, v in pushed.items()} == {"success": 2, "failure": 1}


def test_python_api_push_as_harbor(hub, tmp_path):
    """export_traces(..., push=True, repo_id=...) as Harbor's helper is called."""
    import os
    env = hub_env(hub, tmp_path)
    script = ("from harbor_hooks import export_traces\n"
              f"ds = export_traces({str(SAMPLE_JOB)!r}, episodes='last', push=True, repo_id='org/api')\n"
              "print(len(ds))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("9")
    assert len(load_from_hub(env, "org/api")["train"]) == 9


def test_append_refuses_other_columns_or_splits(hub, tmp_path):
    """--append onto a repo whose columns or splits differ would leave it unloadable, or drop
    its other splits: refused, the repo as it was."""
    env = hub_env(hub, tmp_path)
    run_cli("traces", "export", "--sample", "--push", "--repo", "me/app", env=env, check=True)
    for extra in (["--schema", "messages"], ["--splits"]):
        proc = run_cli("traces", "export", "--sample", "--push", "--repo", "me/app", "--append", *extra, env=env)
        assert proc.returncode == 1 and "error: --append:" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert {name: len(rows) for name, rows in load_from_hub(env, "me/app").items()} == {"train": 35}


def uploaded(hub, since: int = 0) -> dict[str, int]:
    """oid -> bytes of every LFS object the server received since request number `since`."""
    from urllib.parse import parse_qs

    out = {}
    for record in hub.requests[since:]:
        if record.method == "PUT" and "/_lfs/" in record.path and record.status in (200, 201):
            oid = record.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            query = record.query if isinstance(record.query, str) else ""
            size = parse_qs(query).get("size", ["0"])[0] if query else "0"
            out[oid] = int(size)
    return out


def test_a_killed_push_resumes_without_uploading_again(hub, tmp_path):
    """Shards upload as they are written; killed halfway, the push run again uploads only the
    shards the Hub does not hold (by sha256), commits in batches of --commit-every, and the
    repo then loads equal to the local export."""
    import os
    import signal
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from make_job import make_job

    job = make_job(tmp_path / "job", 120, atif_only=True, unique=True)
    local = tmp_path / "local.parquet"
    run_cli("traces", "export", "-p", str(job), "-o", str(local), check=True)
    env = hub_env(hub, tmp_path)
    argv = [sys.executable, "-m", "harbor_hooks", "traces", "push", str(local), "--repo", "org/big",
            "--max-shard-size", "40KB", "--commit-every", "4"]
    hub.delay_next(r"/_lfs/", 0.3, times=None, method="PUT")  # slow uploads: time to kill it halfway
    first = subprocess.Popen(argv, env={**os.environ, **env, "PYTHONPATH": str(Path(__file__).parent.parent)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(uploaded(hub)) < 3:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    hub.clear_faults()
    run1 = uploaded(hub)
    mark = len(hub.requests)
    second = run_cli("traces", "push", str(local), "--repo", "org/big", "--max-shard-size", "40KB",
                     "--commit-every", "4", env=env)
    assert second.returncode == 0, second.stderr
    run2 = uploaded(hub, mark)
    files = hub.list_files("org/big")
    shards = {meta["lfs"]["oid"]: meta["size"] for path, meta in files.items()
              if path.endswith(".parquet") and meta.get("lfs")}
    assert len(shards) > 8  # many shards
    assert not set(run1) & set(run2)  # nothing uploaded twice
    assert set(run1) | set(run2) == set(shards)
    print(f"run 1 uploaded {sum(run1.values())} bytes, run 2 {sum(run2.values())} of {sum(shards.values())}")
    commits = hub.list_commits("org/big")
    parts = [c for c in commits if "(part " in (c.get("title") or "")]
    assert len(parts) >= len(shards) // 4  # committed in batches of 4 shards
    pushed = load_from_hub(env, "org/big")["train"]
    assert pushed == pq.read_table(local).to_pylist()
