"""Shared test helpers: build Harbor trial directories on disk, run the CLI for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_JOB = ROOT / "harbor_hooks" / "samples" / "sample-job"
EXPECTED = Path(__file__).resolve().parent / "data" / "expected"
JOB_ID = "5f0c3a9e-2b7d-4c1e-9a8f-0d1e2f3a4b5c"


@pytest.fixture(scope="session")
def harbor_py() -> Path:
    """The Harbor 0.24 venv's python (tests/harbor_env.py); skip, with why, when it cannot be made."""
    from harbor_env import harbor_python, harbor_unavailable_reason

    python = harbor_python()
    if python is None:
        pytest.skip(f"no Harbor 0.24.0 venv: {harbor_unavailable_reason()}")
    return python


def run_cli(*args: str, env: dict | None = None, cwd: str | None = None,
            check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """`harbor-hooks ARGS` as a real subprocess (python -m, so the checkout is what runs)."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONPATH", str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "harbor_hooks", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def canonical_key(row: dict) -> tuple:
    source = row.get("trace_source") or "main"
    return (row["trial_name"], source != "main", source, int(row["episode"].split("-")[1]))


def assert_rows_match(got: list[dict], expected: list[dict]) -> None:
    """The expected-rows rule: same count; each expected row's columns equal, in canonical order."""
    assert len(got) == len(expected), (len(got), len(expected))
    for g, e in zip(sorted(got, key=canonical_key), sorted(expected, key=canonical_key)):
        for column, value in e.items():
            assert g.get(column) == value, (e["trial_name"], e["episode"], column)


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def trial_result(name: str, task: str = "hello-world", reward: float | None = 1.0,
                 exception: str | None = None, **extra) -> dict:
    data = {
        "task_name": task, "trial_name": name,
        "config": {"agent": {"name": "terminus-2", "model_name": "openai/gpt-4o"},
                   "job_id": "job-1", "trial_name": name},
        "agent_info": {"name": "terminus-2", "version": "2.0.0",
                       "model_info": {"name": "gpt-4o", "provider": "openai"}},
        "verifier_result": {"rewards": {"reward": reward}} if reward is not None else None,
        "exception_info": {"exception_type": exception} if exception else None,
        "started_at": "2025-11-02T10:00:00.000000",
    }
    data.update(extra)
    return data


def atif(steps: list[dict], **extra) -> dict:
    doc = {"schema_version": "ATIF-v1.7", "session_id": "s",
           "agent": {"name": "terminus-2", "version": "2.0.0", "model_name": "openai/gpt-4o"},
           "steps": steps}
    doc.update(extra)
    return doc


def make_trial(job: Path, name: str, trajectory: dict | None = None, result: dict | None = None,
               **result_kw) -> Path:
    trial = job / name
    (trial / "agent").mkdir(parents=True, exist_ok=True)
    write_json(trial / "result.json", result if result is not None else trial_result(name, **result_kw))
    if trajectory is not None:
        write_json(trial / "agent" / "trajectory.json", trajectory)
    return trial


def simple_steps(n_agent: int = 2, prefix: str = "") -> list[dict]:
    steps = [{"step_id": 1, "source": "user", "message": f"{prefix}task"}]
    for i in range(n_agent):
        steps.append({"step_id": i + 2, "source": "agent", "message": f"{prefix}reply {i}",
                      "observation": {"results": [{"content": f"{prefix}out {i}"}]}})
    return steps


@pytest.fixture
def sample_job(tmp_path: Path) -> Path:
    """A writable copy of the bundled sample job."""
    dest = tmp_path / "sample-job"
    shutil.copytree(SAMPLE_JOB, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    return dest
