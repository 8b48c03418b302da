"""The job-level result.json: read once per worker process, reported once per export,
read again when it changes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import atif, make_trial, read_jsonl, run_cli, simple_steps, write_json
from harbor_hooks import export_traces
from harbor_hooks.readers import meta as trial
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline import TRIALS_PER_TASK
from harbor_hooks.pipeline.transform import task_rows
from harbor_hooks.report import ExportReport


def job_stats(rewards: dict[str, float]) -> dict:
    buckets: dict[str, list[str]] = {}
    for name, reward in rewards.items():
        buckets.setdefault(str(reward), []).append(name)
    return {"stats": {"evals": {"terminus-2__gpt-4o": {"reward_stats": {"reward": buckets}}}}}


def make_job(job: Path, n: int) -> list[str]:
    names = [f"t__{i:04d}" for i in range(n)]
    for name in names:
        make_trial(job, name, trajectory=atif(simple_steps(1)), reward=1.0)
    return names


def test_a_bad_job_result_is_reported_once_whatever_the_tasks(tmp_path):
    job = tmp_path / "job"
    make_job(job, 2 * TRIALS_PER_TASK + 5)  # three tasks, over two workers
    (job / "result.json").write_text('{"stats": {"evals": ')
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(tmp_path / "o.jsonl"),
                   "--report", str(tmp_path / "r.json"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(s["kind"], s["path"]) for s in report["skipped"]] == [("file", str(job / "result.json"))]
    assert "skipped: 1 file" in proc.stdout
    # the trials' own rewards decide, as when the job-level file is absent
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 2 * TRIALS_PER_TASK + 5


def test_a_rewritten_job_result_is_read_again_in_the_same_process(tmp_path):
    job = tmp_path / "job"
    names = make_job(job, 3)
    write_json(job / "result.json", job_stats({names[0]: 0.0, names[1]: 1.0, names[2]: 1.0}))
    first = export_traces(str(job), success_filter="success", workers=1)
    assert sorted(first["trial_name"]) == names[1:]
    # a later sweep of the same job dir: more successes, a longer file
    write_json(job / "result.json", job_stats({names[0]: 1.0, names[1]: 1.0, names[2]: 1.0,
                                                "t__later": 0.0}))
    second = export_traces(str(job), success_filter="success", workers=1)
    assert sorted(second["trial_name"]) == names


def test_the_tasks_of_a_worker_parse_their_job_file_once(tmp_path, monkeypatch):
    job = tmp_path / "job"
    names = make_job(job, 4)
    write_json(job / "result.json", job_stats({name: 1.0 for name in names}))
    reads = []
    real = trial.read_json
    monkeypatch.setattr(trial, "read_json", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    trial._JOB_INDEXES.clear()
    dirs = sorted(str(job / name) for name in names)
    for batch in (dirs[:2], dirs[2:]):  # two tasks, as a pool worker runs them
        report = ExportReport()
        assert len(list(task_rows(batch, str(job), ExportOptions(), report))) == 2
        assert report.skips == []
    assert reads == [str(job / "result.json")]
