"""The hook service end to end: `run` and `sweeps run` as subprocesses, a real entry-point plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ROOT, run_cli
from harbor_hooks.errors import SettingsError
from harbor_hooks.settings import load_settings

RUNNER = f"{sys.executable} {ROOT / 'tests' / 'fake_runner.py'} {{config}}"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The tests' third-party plugin, really installed (pip) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(ROOT / "tests" / "plugin_pkg")], check=True, capture_output=True)
    return target


def env_with(plugin_path: Path, log: Path, **extra) -> dict:
    return {"PYTHONPATH": f"{ROOT}:{plugin_path}", "TESTPLUGIN_LOG": str(log), **extra}


def write_config(tmp_path: Path, **overrides) -> Path:
    config = {"job_name": "demo", "jobs_dir": str(tmp_path / "jobs"), "n_attempts": 2,
              "agents": [{"name": "terminus-2", "model_name": "openai/gpt-4o"}],
              "tasks": [{"path": "tasks/hello-world"}, {"path": "tasks/fix-git"}],
              "fake": {"rewards": {"hello-world": [1.0], "fix-git": [0.0]}}}
    config.update(overrides)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_plugins_lists_builtin_and_entry_point(plugin_path, tmp_path):
    proc = run_cli("plugins", env=env_with(plugin_path, tmp_path / "log"), check=True)
    assert "exporter\tbuilt-in" in proc.stdout
    assert "recorder\tharbor-hooks-testplugin 0.1.0 (entry point harbor_hooks)" in proc.stdout


def test_run_exports_and_calls_every_hook(plugin_path, tmp_path):
    log = tmp_path / "calls.jsonl"
    out = tmp_path / "out.parquet"
    proc = run_cli("run", "-c", str(write_config(tmp_path)), "--runner-cmd", RUNNER,
                   "--export-traces", "--export-output", str(out), "--agent", "terminus-2",
                   "--model", "openai/gpt-4o-mini", env=env_with(plugin_path, log))
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out).to_pylist()
    assert len(table) == 4 * 4  # 4 trials x 4 episodes of the template trial
    assert {r["run_id"] for r in table} and {r["task"] for r in table} == {"hello-world", "fix-git"}
    trials = sorted(c["trial_dir"] for c in calls(log) if c["hook"] == "on_trial_complete")
    assert len(trials) == len(set(trials)) == 4  # once per trial
    job_dirs = [c["job_dir"] for c in calls(log) if c["hook"] == "on_job_complete"]
    assert job_dirs == [str(tmp_path / "jobs" / "demo")]
    trial_cfg = json.loads(next((tmp_path / "jobs" / "demo").glob("*/config.json")).read_text())
    assert trial_cfg["agent"]["model_name"] == "openai/gpt-4o-mini"  # --model reached the runner
    # each trial was exported as it finished (streaming): at the job's end, none read again
    assert "--incremental: 0 trials read, 4 reused" in proc.stderr, proc.stderr[-3000:]
    full = tmp_path / "full.parquet"
    run_cli("traces", "export", "-p", str(tmp_path / "jobs" / "demo"), "-o", str(full), check=True)
    assert out.read_bytes() == full.read_bytes()


def test_plugin_failure_is_reported_and_does_not_stop_the_exporter(plugin_path, tmp_path):
    log = tmp_path / "calls.jsonl"
    out = tmp_path / "out.jsonl"
    proc = run_cli("run", "-c", str(write_config(tmp_path)), "--runner-cmd", RUNNER,
                   "--export-traces", "--export-output", str(out),
                   env=env_with(plugin_path, log, TESTPLUGIN_FAIL="1"))
    assert proc.returncode == 3
    assert "1 hook failure(s) during this run" in proc.stderr
    assert "recorder.on_job_complete failed: RuntimeError: test plugin failure" in proc.stderr
    assert len(out.read_text().splitlines()) == 16


def test_failed_export_reported_at_end_job_outcome_kept(plugin_path, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder is needed")
    log = tmp_path / "calls.jsonl"
    proc = run_cli("run", "-c", str(write_config(tmp_path)), "--runner-cmd", RUNNER,
                   "--export-traces", "--export-output", str(blocker / "out.parquet"),
                   env=env_with(plugin_path, log))
    assert proc.returncode == 3
    assert "exporter.on_job_complete failed" in proc.stderr
    assert [c["hook"] for c in calls(log)].count("on_trial_complete") == 4  # the run went on
    # the job's own failure wins over hook failures
    proc = run_cli("run", "-c", str(write_config(tmp_path, job_name="failing",
                                                 fake={"exit_code": 7})),
                   "--runner-cmd", RUNNER, "--export-traces", "--export-output",
                   str(blocker / "out.parquet"), env=env_with(plugin_path, log))
    assert proc.returncode == 7


def test_job_dir_fires_hooks_on_finished_job(plugin_path, tmp_path, sample_job):
    log = tmp_path / "calls.jsonl"
    out = tmp_path / "o.jsonl"
    proc = run_cli("run", "--job-dir", str(sample_job), "--export-traces", "--export-episodes",
                   "last", "--export-output", str(out), env=env_with(plugin_path, log))
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 9
    assert [c["hook"] for c in calls(log)].count("on_trial_complete") == 6


def test_without_push_or_output_the_export_goes_to_the_job_folder(plugin_path, tmp_path, sample_job):
    """run --export-traces alone writes <job_dir>/traces/ (Parquet and the report) and says
    where; the Python API keeps returning the Dataset in memory."""
    proc = run_cli("run", "--job-dir", str(sample_job), "--export-traces",
                   "--log-format", "json", env=env_with(plugin_path, tmp_path / "l"))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    exported = [e for e in events if e.get("event") == "exported traces"]
    assert exported and exported[0]["rows"] == 35
    folder = sample_job / "traces"
    assert any(e.get("path") == str(folder) for e in events)
    assert pq.read_table(folder / "traces.parquet").num_rows == 35
    assert json.loads((folder / "report.json").read_text())["rows"] == 35
    again = run_cli("run", "--job-dir", str(sample_job), "--export-traces", env=env_with(plugin_path, tmp_path / "l"))
    assert again.returncode == 0, again.stderr  # our own output, replaced; traces/ is not a trial
    assert pq.read_table(folder / "traces.parquet").num_rows == 35
    import shutil
    shutil.rmtree(folder)
    folder.write_text("a file of the user's")
    blocked = run_cli("run", "--job-dir", str(sample_job), "--export-traces", env=env_with(plugin_path, tmp_path / "l"))
    assert blocked.returncode == 3 and "Traceback" not in blocked.stderr
    assert "traces: is not a folder" in blocked.stderr and "--export-output" in blocked.stderr
    assert folder.read_text() == "a file of the user's"


def test_settings_precedence_yaml_env_flag(monkeypatch):
    section = {"episodes": "last", "sharegpt": True, "filter": "failure"}
    assert load_settings(section).episodes == "last"
    monkeypatch.setenv("HARBOR_HOOKS_EPISODES", "all")
    monkeypatch.setenv("HARBOR_HOOKS_FILTER", "success")
    settings = load_settings(section, filter="all")
    assert (settings.episodes, settings.filter, settings.sharegpt) == ("all", "all", True)
    assert load_settings(section, episodes="last").episodes == "last"
    assert load_settings({}, defaults={"episodes": "last"}).episodes == "all"  # env beats default


def test_settings_precedence_through_run(plugin_path, tmp_path, sample_job):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"export": {"traces": True, "episodes": "last",
                                                 "output": str(tmp_path / "yaml.jsonl")}}))
    env = env_with(plugin_path, tmp_path / "l", HARBOR_HOOKS_OUTPUT=str(tmp_path / "env.jsonl"))
    run_cli("run", "-c", str(config), "--job-dir", str(sample_job), env=env, check=True)
    assert len((tmp_path / "env.jsonl").read_text().splitlines()) == 9  # env beats YAML
    run_cli("run", "-c", str(config), "--job-dir", str(sample_job), "--export-episodes", "all",
            env=env, check=True)
    assert len((tmp_path / "env.jsonl").read_text().splitlines()) == 35  # flag beats YAML


def test_invalid_setting_fails_fast_naming_the_key(plugin_path, tmp_path):
    config = write_config(tmp_path, export={"episodes": "some"})
    proc = run_cli("run", "-c", str(config), "--runner-cmd", RUNNER,
                   env=env_with(plugin_path, tmp_path / "l"))
    assert proc.returncode == 2
    assert "invalid option 'episodes'" in proc.stderr and "HARBOR_HOOKS_EPISODES" in proc.stderr
    assert not (tmp_path / "jobs").exists()  # nothing ran
    with pytest.raises(SettingsError, match="workers"):
        load_settings({"workers": 0})


def test_sweeps_drop_succeeded_tasks_and_export_splits(plugin_path, tmp_path):
    log = tmp_path / "calls.jsonl"
    config = write_config(tmp_path, fake={"rewards": {"hello-world": [0.0, 1.0], "fix-git": [1.0]}})
    out = tmp_path / "splits"
    proc = run_cli("sweeps", "run", "-c", str(config), "--max-sweeps", "3", "--trials-per-task", "2",
                   "--runner-cmd", RUNNER, "--hint", "be brief", "--export-output", str(out),
                   env=env_with(plugin_path, log))
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert jobs == ["demo.sweep-1", "demo.sweep-2"]  # stopped early: no task left for sweep 3
    sweep2_tasks = {p.name.split("__")[0] for p in (tmp_path / "jobs" / "demo.sweep-2").iterdir()
                    if p.is_dir()}
    assert sweep2_tasks == {"hello-world"}  # fix-git succeeded in sweep 1 and was dropped
    from datasets import load_from_disk
    splits = load_from_disk(str(out))
    assert splits.num_rows == {"success": 4, "failure": 2}  # last episode of each trial
    assert set(splits["failure"]["task"]) == {"hello-world"}
    sweep_calls = [c for c in calls(log) if c["hook"] == "on_sweep_complete"]
    assert len(sweep_calls) == 1 and len(sweep_calls[0]["job_dirs"]) == 2
    trial_cfg = json.loads(next((tmp_path / "jobs" / "demo.sweep-1").glob("*/config.json")).read_text())
    assert trial_cfg["agent"]["kwargs"]["hint"] == "be brief"


def test_sweeps_hints_file_runs_one_job_per_task(plugin_path, tmp_path):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({"hello-world": "print it", "fix-git": "use git"}))
    config = write_config(tmp_path)
    proc = run_cli("sweeps", "run", "-c", str(config), "--max-sweeps", "1", "--trials-per-task", "1",
                   "--runner-cmd", RUNNER, "--hints-file", str(hints),
                   env=env_with(plugin_path, tmp_path / "l"))
    assert proc.returncode == 0, proc.stderr
    assert "sweep export skipped" in proc.stderr and "--push" in proc.stderr
    job = tmp_path / "jobs" / "demo.sweep-1.fix-git"
    trial_cfg = json.loads(next(job.glob("*/config.json")).read_text())
    assert trial_cfg["agent"]["kwargs"]["hint"] == "use git"


def test_hooks_go_through_pluggy_with_each_failure_isolated(tmp_path):
    """A wrapper, tryfirst ordering and hook monitoring all see the call, while one plugin's
    failure is collected and the others (the exporter too) still run."""
    from harbor_hooks.hooks.manager import call_hook, get_plugin_manager
    from harbor_hooks.hooks.specs import hookimpl

    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def on_job_complete(self, job_dir, settings):
            seen.append("wrapper before")
            result = yield
            seen.append(f"wrapper after ({len(result)} results)")
            return result

    class Failing:
        @hookimpl
        def on_job_complete(self, job_dir, settings):
            seen.append("failing")
            raise RuntimeError("boom")

    class First:
        @hookimpl(tryfirst=True)
        def on_job_complete(self, job_dir, settings):
            seen.append("first")

    class Exporter:  # stands in for the built-in one, registered the same way
        @hookimpl(trylast=True)
        def on_job_complete(self, job_dir, settings):
            seen.append("last")

    pm = get_plugin_manager(load_entry_points=False)
    pm.unregister(name="exporter")
    for name, plugin in (("wrapper", Wrapper()), ("failing", Failing()), ("first", First()),
                         ("exporter", Exporter())):
        pm.register(plugin, name=name)
    monitored = []
    pm.add_hookcall_monitoring(lambda hook, impls, kwargs: monitored.append((hook, [i.plugin_name for i in impls])),
                               lambda outcome, hook, impls, kwargs: monitored.append(("done", outcome.exception)))
    failures = call_hook(pm, "on_job_complete", job_dir=tmp_path, settings=load_settings(None))
    assert [f.line() for f in failures] == ["failing.on_job_complete failed: RuntimeError: boom"]
    assert seen == ["wrapper before", "first", "failing", "last", "wrapper after (0 results)"]
    assert monitored == [("on_job_complete", ["exporter", "failing", "first", "wrapper"]), ("done", None)]
    # a second call guards nothing twice and still isolates the failure
    assert len(call_hook(pm, "on_job_complete", job_dir=tmp_path, settings=load_settings(None))) == 1
