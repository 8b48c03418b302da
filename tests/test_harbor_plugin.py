"""Harbor 0.24 itself loads and drives HarborHooksJobPlugin (`harbor run --plugin harbor-hooks`).

Harbor needs Python >= 3.12, so everything that touches Harbor runs in a subprocess with
the venv from harbor_env.harbor_python() (Harbor 0.24.0 + this checkout, installed with
pip, so our `harbor.plugins` entry point is real package metadata). The tests skip, with
the reason, only when that venv cannot be made.

Docker does not run here, so no trial can execute. DRIVER therefore uses Harbor's own
objects everywhere Docker is not involved: `Job.create(JobConfig)` from the sample job's
config.json, `attach_job_plugins` with the configs `--plugin harbor-hooks --plugin-kwarg
K=V` produce, real `Trial.create` trials wired by `TrialQueue._setup_hooks`, Harbor's
`Trial._emit` building each END `TrialHookEvent`, and `finalize_job_plugins` with a
`JobResult` validated from the job's result.json. Only the Docker part of `Trial.run`
(environment, agent, verifier) is replaced by copying in the recorded trial.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXPECTED, ROOT, SAMPLE_JOB, assert_rows_match, read_jsonl
from harbor_env import venv_env

PLUGIN_NAME = "harbor-hooks"
IMPORT_PATH = "harbor_hooks.hooks.harbor:HarborHooksJobPlugin"
SAMPLE_TRIALS = sorted(p.name for p in SAMPLE_JOB.iterdir() if (p / "result.json").is_file())

DISCOVERY = r"""
import json, sys
from harbor.cli.plugin_registry import list_plugin_entry_points, resolve_plugin_import_path
from harbor.models.job.plugin import JobPlugin
from harbor.utils.import_path import import_class

import_path = resolve_plugin_import_path("harbor-hooks")
cls = import_class(import_path, label="plugin")   # what attach_job_plugin does
plugin = cls(output="out.jsonl", episodes="last")
try:
    cls(episodes="bogus")
    bad_kwarg = None
except Exception as exc:
    bad_kwarg = f"{type(exc).__name__}: {exc}"
print(json.dumps({
    "entry_points": list_plugin_entry_points(),
    "import_path": import_path,
    "module_file": sys.modules[cls.__module__].__file__,
    "is_job_plugin": isinstance(plugin, JobPlugin),
    "episodes": plugin.settings.episodes,
    "traces": plugin.settings.traces,
    "output": str(plugin.settings.output),
    "bad_kwarg": bad_kwarg,
}))
"""

# Runs on the venv's Python 3.12: argv[1] is a JSON spec (work, recorded, plugin_kwargs,
# finalize, summary). Writes a JSON summary to spec["summary"].
DRIVER = r'''
import asyncio
import json
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

spec = json.loads(sys.argv[1])
work, recorded = Path(spec["work"]), Path(spec["recorded"])
os.chdir(work)  # the sample's config.json is relative: jobs_dir "jobs", tasks/<name>

from harbor.cli.job_plugins import attach_job_plugins, finalize_job_plugins, plugin_configs_from_cli
from harbor.job import Job
from harbor.models.job.config import JobConfig
from harbor.models.job.plugin import JobPlugin
from harbor.models.job.result import JobResult, JobStats
from harbor.models.trial.config import TrialConfig
from harbor.models.trial.result import TrialResult
from harbor.trial.hooks import TrialEvent
from harbor.trial.trial import Trial


def make_tasks(config):
    """Minimal local task dirs, so Job.create and Trial.create resolve the sample's tasks."""
    for task in config.tasks:
        task_dir = work / task.path
        (task_dir / "environment").mkdir(parents=True, exist_ok=True)
        (task_dir / "tests").mkdir(exist_ok=True)
        (task_dir / "task.toml").write_text('version = "1.0"\n')
        (task_dir / "instruction.md").write_text(f"Solve {task_dir.name}.\n")
        (task_dir / "environment" / "Dockerfile").write_text("FROM ubuntu:24.04\n")
        (task_dir / "tests" / "test.sh").write_text("#!/bin/sh\necho 1 > /logs/verifier/reward.txt\n")


def trial_config(recorded_trial, job):
    """The recorded trial's config.json (older trials: result.json's config), in this job's dir."""
    raw = json.loads((recorded_trial / "result.json").read_text())
    path = recorded_trial / "config.json"
    data = json.loads(path.read_text()) if path.is_file() else dict(raw.get("config") or {})
    data.setdefault("task", {"path": f"tasks/{raw['task_name']}"})
    data["trials_dir"] = str(job.job_dir)
    return TrialConfig.model_validate(data)


def trial_result(recorded_trial, trial):
    """The recorded outcome over the TrialResult Harbor's Trial started (its id, trial_uri,
    config, task_id, checksum). An older layout (reward without `rewards`) is upgraded in
    memory only: the files on disk stay exactly as recorded."""
    raw = json.loads((recorded_trial / "result.json").read_text())
    data = trial.result.model_dump(mode="json")
    data.update({k: v for k, v in raw.items() if k in TrialResult.model_fields
                 and k not in ("id", "trial_uri", "config", "task_id", "task_checksum")})
    verifier = raw.get("verifier_result")
    if isinstance(verifier, dict) and "rewards" not in verifier:
        data["verifier_result"] = {"rewards": verifier}
    return TrialResult.model_validate(data)


async def main():
    config = JobConfig.model_validate_json((recorded / "config.json").read_text())
    make_tasks(config)
    job = await Job.create(config)                      # `harbor run`: the job first, then plugins
    plugin_args = [f"{key}={value}" for key, value in spec["plugin_kwargs"].items()]
    plugins = await attach_job_plugins(job, plugin_configs_from_cli(["harbor-hooks"], plugin_args))
    plugin = plugins[0]
    end_hooks = [getattr(h, "__qualname__", repr(h)) for h in job._trial_queue._hooks[TrialEvent.END]]

    # Job.run()'s prologue: the live JobResult that Harbor's own END hook updates.
    now = datetime.now()
    recorded_trials = sorted(p for p in recorded.iterdir() if (p / "result.json").is_file())
    job._job_result = JobResult(id=job.id, started_at=now, updated_at=now,
                                n_total_trials=len(recorded_trials), stats=JobStats())
    fired = []
    for recorded_trial in recorded_trials:
        # TrialQueue._execute_trial_with_retries: Trial.create, then the queue's hooks.
        trial = await Trial.create(trial_config(recorded_trial, job))
        job._trial_queue._setup_hooks(trial)
        # Trial.run() minus Docker: start, replay the recorded outputs, finish.
        trial._init_result()
        await trial._emit(TrialEvent.START)
        shutil.copytree(recorded_trial, trial.paths.trial_dir, dirs_exist_ok=True)
        trial._result = trial_result(recorded_trial, trial)
        await trial._emit(TrialEvent.END)   # Harbor builds the TrialHookEvent, awaits each END hook
        trial._close_logger_handler()
        fired.append(trial.config.trial_name)
    live = json.loads((job.job_dir / "result.json").read_text())  # by Job._on_trial_completed

    # Job.run()'s epilogue: the final config.json and result.json (the recorded job's).
    (job.job_dir / "config.json").write_text(config.model_dump_json(indent=4, exclude_defaults=True))
    shutil.copy(recorded / "result.json", job.job_dir / "result.json")
    job._close_logger_handlers()
    job_result = JobResult.model_validate_json((job.job_dir / "result.json").read_text())

    if spec["finalize"] == "harbor":
        await finalize_job_plugins(plugins, job_result)
    else:  # the plugin's own on_job_end, with nothing around it to catch an exception
        await plugin.on_job_end(job_result)
    return {
        "plugin_class": f"{type(plugin).__module__}:{type(plugin).__qualname__}",
        "is_job_plugin": isinstance(plugin, JobPlugin),
        "job_dir": str(Path(job.job_dir).resolve()),
        "end_hooks": end_hooks,
        "fired": fired,
        "live_n_completed": live["stats"]["n_completed_trials"],
        "failures": [failure.line() for failure in plugin.failures],
    }


Path(spec["summary"]).write_text(json.dumps(asyncio.run(main())))
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The tests' recorder plugin (entry point group harbor_hooks), pip-installed into a folder
    that only the driver's PYTHONPATH sees, so the shared venv stays clean."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(ROOT / "tests" / "plugin_pkg")], check=True, capture_output=True)
    return target


def drive(harbor_py: Path, plugin_site: Path, tmp_path: Path, plugin_kwargs: dict,
          finalize: str = "harbor", work_name: str = "work"):
    """Run DRIVER on a fresh copy of the sample job; return (process, summary, hook calls)."""
    recorded = tmp_path / "recorded" / "sample-job"
    shutil.copytree(SAMPLE_JOB, recorded)
    for p in [recorded, *recorded.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    work = tmp_path / work_name
    work.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    log, summary = tmp_path / "calls.jsonl", tmp_path / "summary.json"
    spec = {"work": str(work), "recorded": str(recorded), "plugin_kwargs": plugin_kwargs,
            "finalize": finalize, "summary": str(summary)}
    proc = subprocess.run([str(harbor_py), str(driver), json.dumps(spec)], capture_output=True,
                          text=True, timeout=600, cwd=work,
                          env=venv_env(PYTHONPATH=str(plugin_site), TESTPLUGIN_LOG=str(log)))
    assert proc.returncode == 0 and summary.is_file(), (
        f"driver exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, json.loads(summary.read_text()), calls


def test_harbor_finds_plugin_by_entry_point(harbor_py):
    proc = subprocess.run([str(harbor_py), "-c", DISCOVERY], capture_output=True, text=True,
                          timeout=300, env=venv_env())
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["entry_points"].get(PLUGIN_NAME) == IMPORT_PATH
    assert info["import_path"] == IMPORT_PATH
    assert Path(info["module_file"]).resolve() == ROOT / "harbor_hooks" / "hooks" / "harbor.py"
    assert info["is_job_plugin"] is True
    assert (info["episodes"], info["traces"], info["output"]) == ("last", True, "out.jsonl")
    assert info["bad_kwarg"] and "episodes" in info["bad_kwarg"], info["bad_kwarg"]

    listing = subprocess.run([str(harbor_py.parent / "harbor"), "plugins", "list"],
                             capture_output=True, text=True, timeout=300, env=venv_env())
    assert listing.returncode == 0, listing.stderr
    assert PLUGIN_NAME in listing.stdout and IMPORT_PATH in listing.stdout


def test_harbor_job_fires_hooks_and_exports_last_episodes(harbor_py, plugin_site, tmp_path):
    out = tmp_path / "out" / "last.jsonl"
    proc, summary, calls = drive(harbor_py, plugin_site, tmp_path,
                                 {"output": str(out), "episodes": "last"})
    job_dir = Path(summary["job_dir"])
    assert job_dir == (tmp_path / "work" / "jobs" / "sample-job").resolve()
    assert summary["plugin_class"] == IMPORT_PATH and summary["is_job_plugin"]
    # Harbor wires the plugin's callback into every trial, after its own bookkeeping hook
    assert summary["end_hooks"] == ["Job._on_trial_completed", "HarborHooksJobPlugin._trial_ended"]
    assert summary["fired"] == SAMPLE_TRIALS
    assert summary["live_n_completed"] == len(SAMPLE_TRIALS)  # Harbor's own hook saw them too
    assert summary["failures"] == []

    # on_trial_complete: once per trial, with the trial's directory, before on_job_complete
    trial_calls = [c for c in calls if c["hook"] == "on_trial_complete"]
    assert [Path(c["trial_dir"]) for c in trial_calls] == [job_dir / name for name in SAMPLE_TRIALS]
    assert all((Path(c["trial_dir"]) / "result.json").is_file() for c in trial_calls)
    assert [c["hook"] for c in calls] == ["on_trial_complete"] * len(SAMPLE_TRIALS) + ["on_job_complete"]
    job_call = calls[-1]
    assert (tmp_path / "work" / job_call["job_dir"]).resolve() == job_dir  # Harbor's job_dir may be relative
    assert job_call["episodes"] == "last"

    # on_job_complete: the built-in exporter wrote exactly `--episodes last`'s rows
    assert_rows_match(read_jsonl(out), read_jsonl(EXPECTED / "last.jsonl"))
    assert len(read_jsonl(out)) == 9
    # each trial was exported at its END event (streaming): the job's end read none again
    assert "--incremental: 0 trials read, 6 reused" in proc.stderr, proc.stderr[-3000:]
    assert (out.parent / "last.jsonl.incremental" / "manifest.json").is_file()


def test_failing_export_is_reported_not_raised(harbor_py, plugin_site, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file\n")
    # finalize="plugin": DRIVER awaits plugin.on_job_end itself, so an exception would end it
    proc, summary, calls = drive(harbor_py, plugin_site, tmp_path,
                                 {"output": str(blocker / "out.jsonl"), "episodes": "last"},
                                 finalize="plugin")
    assert len(summary["failures"]) == 1, summary["failures"]
    assert summary["failures"][0].startswith("exporter.on_job_complete failed:")
    assert "1 hook failure(s) during this run" in proc.stderr
    assert "exporter.on_job_complete failed" in proc.stderr
    assert blocker.read_text() == "a regular file\n"
    # the other plugins still ran: every trial hook, and the recorder's on_job_complete
    assert [c["hook"] for c in calls] == ["on_trial_complete"] * len(SAMPLE_TRIALS) + ["on_job_complete"]


def test_trial_dir_survives_percent_encoding(harbor_py, plugin_site, tmp_path):
    proc, summary, calls = drive(harbor_py, plugin_site, tmp_path,
                                 {"output": str(tmp_path / "out.jsonl"), "episodes": "last"},
                                 work_name="with space")
    job_dir = Path(summary["job_dir"])
    trial_dirs = [Path(c["trial_dir"]) for c in calls if c["hook"] == "on_trial_complete"]
    assert trial_dirs == [job_dir / name for name in SAMPLE_TRIALS]
