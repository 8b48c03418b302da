"""Harbor 0.24's real `harbor run` CLI runs a job with our plugin (`--plugin harbor-hooks`).

No docker: trials run in tests/harbor_nsenv.py's NamespaceEnvironment (a private mount
namespace with the trial's folders on /app, /logs, /tests, /solution), selected with
`--env harbor_nsenv:NamespaceEnvironment`. The task is tests/data/harbor-task, the agent
`oracle`; its solve.sh writes an ATIF trajectory, so the job has rows to export. Skipped,
with the reason, when not root, without `unshare`, or without the Harbor venv.

The tests `test_a_` to `test_f_` are the defects an outside run reported (issue 18): the
export: section of a job YAML, HARBOR_HOOKS_TRACES, push readiness before any trial,
numeric --pk values, retried trials, and a bad setting as one line with no job folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harbor_run_cli import (ROOT, HarborCli, install_site, skip_reason, trial_dirs,
                            write_attempts_plugin)

_why = skip_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

EPISODES_ALL = 3  # the oracle trajectory: 3 agent turns -> episode-0..2


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def show(proc) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> list[Path]:
    """tests/plugin_pkg's recorder and the attempts plugin, in folders only PYTHONPATH sees."""
    base = tmp_path_factory.mktemp("sites")
    recorder = install_site(ROOT / "tests" / "plugin_pkg", base / "recorder")
    attempts = install_site(write_attempts_plugin(base / "attempts-src"), base / "attempts")
    return [recorder, attempts]


@pytest.fixture
def cli(tmp_path, sites) -> HarborCli:
    return HarborCli(tmp_path, sites)


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory, sites):
    """One `harbor run --plugin harbor-hooks --pk output=... --export-traces` job."""
    cli = HarborCli(tmp_path_factory.mktemp("run"), sites)
    rows = cli.work / "rows.jsonl"
    proc = cli.run("main", "--plugin", "harbor-hooks", "--pk", f"output={rows}", "--export-traces")
    return cli, proc, rows


def test_harbor_run_completes_and_plugin_exports(finished_job):
    cli, proc, rows = finished_job
    assert proc.returncode == 0, show(proc)
    job_dir = cli.jobs / "main"
    result = json.loads((job_dir / "result.json").read_text())
    assert result["stats"]["n_completed_trials"] == 1 and result["stats"]["n_errored_trials"] == 0
    [trial] = trial_dirs(job_dir)
    assert (trial / "verifier" / "reward.txt").read_text().strip() == "1"  # the oracle solved it
    assert (trial / "agent" / "trajectory.json").is_file()  # written inside the namespace
    # our plugin, inside Harbor: hooks once per trial, then once for the job
    assert cli.calls() == [{"hook": "on_trial_complete", "trial_dir": str(trial)},
                           {"hook": "on_job_complete", "job_dir": str(job_dir), "episodes": "all"}]
    got = read_jsonl(rows)
    assert [r["episode"] for r in got] == [f"episode-{i}" for i in range(EPISODES_ALL)]
    assert {(r["trial_name"], r["task"], r["agent"], r["reward"], r["success"]) for r in got} == {
        (trial.name, "harbor-task", "oracle", 1.0, True)}
    assert re.search(rf"exported traces\s+rows={EPISODES_ALL}\b", proc.stderr), proc.stderr
    assert "hook failure" not in proc.stderr and "hook failed" not in proc.stderr, proc.stderr


def test_harbor_export_traces_refuses_oracle(finished_job):
    # Harbor's own `--export-traces` runs after the plugins; it refuses the oracle agent
    # (no ATIF capability), prints that and still exits 0.
    cli, proc, rows = finished_job
    assert ("[traces] Export failed: oracle does not support Harbor's trajectory format (ATIF), "
            "cannot export traces") in proc.stdout


@pytest.mark.parametrize("episodes", ["all", "last"])
def test_rows_match_harbors_own_export(finished_job, cli, episodes):
    """Our rows have Harbor's export columns with Harbor's values (plus our extra columns)."""
    _, proc, all_rows = finished_job
    job_dir = finished_job[0].jobs / "main"
    if episodes == "all":
        ours = read_jsonl(all_rows)
    else:
        out = cli.work / "last.jsonl"
        resumed = cli.harbor("job", "resume", "-p", str(job_dir), "--plugin", "harbor-hooks",
                             "--pk", f"output={out}", "--pk", "episodes=last")
        assert resumed.returncode == 0, show(resumed)
        ours = read_jsonl(out)
    theirs = cli.harbor_rows(job_dir, episodes, cli.work / f"harbor-{episodes}.jsonl")
    assert len(ours) == len(theirs) == (EPISODES_ALL if episodes == "all" else 1)
    for mine, harbor in zip(ours, theirs):
        assert set(harbor) <= set(mine)
        assert {k: mine[k] for k in harbor} == harbor


def test_plugin_kwarg_traces_false_skips_export(cli):
    rows = cli.work / "rows.jsonl"
    proc = cli.run("off", "--plugin", "harbor-hooks", "--pk", "traces=false", "--pk", f"output={rows}")
    assert proc.returncode == 0, show(proc)
    assert not rows.exists() and "exporting traces" not in proc.stderr
    assert [c["hook"] for c in cli.calls()] == ["on_trial_complete", "on_job_complete"]


def test_resume_of_finished_job_exports_again(cli):
    first = cli.work / "first.jsonl"
    assert cli.run("res", "--plugin", "harbor-hooks", "--pk", f"output={first}").returncode == 0
    cli.calls_log.unlink()
    again = cli.work / "again.jsonl"
    proc = cli.harbor("job", "resume", "-p", str(cli.jobs / "res"), "--plugin", "harbor-hooks",
                      "--pk", f"output={again}")
    assert proc.returncode == 0, show(proc)
    # nothing to rerun: no trial hook, one job hook, the same rows
    assert cli.calls() == [{"hook": "on_job_complete", "job_dir": str(cli.jobs / "res"),
                            "episodes": "all"}]
    assert read_jsonl(again) == read_jsonl(first)


# --- reported defects: the wanted behaviour, failing today (see each reason) ----------------

def test_a_job_yaml_export_section_is_used(cli):
    out = cli.work / "rows-a.jsonl"
    config = cli.work / "job.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "job_name": "a", "jobs_dir": str(cli.jobs),
        "environment": {"import_path": "harbor_nsenv:NamespaceEnvironment"},
        "agents": [{"name": "oracle"}], "tasks": [{"path": str(ROOT / "tests/data/harbor-task")}],
        "export": {"output": str(out), "episodes": "last"}}))
    proc = cli.harbor("run", "-c", str(config), "--plugin", "harbor-hooks", "-y", "-q")
    assert proc.returncode == 0, show(proc)
    assert out.exists() and len(read_jsonl(out)) == 1
    out.unlink()
    # the route the README shows: --pk config=job.yaml (harbor's own -c is read too, above)
    config.write_text(json.dumps({**json.loads(config.read_text()), "job_name": "a2"}))
    proc = cli.harbor("run", "-c", str(config), "--plugin", "harbor-hooks", "--pk", f"config={config}", "-y", "-q")
    assert proc.returncode == 0, show(proc)
    assert len(read_jsonl(out)) == 1


def test_b_env_traces_false_skips_export(cli):
    rows = cli.work / "rows.jsonl"
    proc = cli.run("b", "--plugin", "harbor-hooks", "--pk", f"output={rows}",
                   env={"HARBOR_HOOKS_TRACES": "false"})
    assert proc.returncode == 0, show(proc)
    assert not rows.exists()


def test_c_push_without_repo_refused_before_trials(cli):
    proc = cli.run("c", "--plugin", "harbor-hooks", "--pk", "push=true")
    assert proc.returncode != 0
    assert not (cli.jobs / "c").exists() or trial_dirs(cli.jobs / "c") == []
    assert "--pk repo=" in proc.stderr and "--export-repo" not in proc.stderr, show(proc)
    proc = cli.run("c2", "--plugin", "harbor-hooks", "--pk", "push=true", "--pk", "repo=org/name",
                   env={"HF_TOKEN": "", "HUGGINGFACE_TOKEN": "", "HF_HOME": str(cli.work / "no-hf-home")})
    assert proc.returncode != 0 and "--pk token=" in proc.stderr, show(proc)


def test_d_numeric_revision_is_a_branch_name(cli):
    rows = cli.work / "rows.jsonl"
    proc = cli.run("d", "--plugin", "harbor-hooks", "--pk", "revision=2025", "--pk", f"output={rows}")
    assert proc.returncode == 0, show(proc)


def test_d_quoted_revision_works(cli):
    rows = cli.work / "rows.jsonl"
    proc = cli.run("d", "--plugin", "harbor-hooks", "--pk", 'revision="2025"', "--pk", f"output={rows}")
    assert proc.returncode == 0, show(proc)
    assert len(read_jsonl(rows)) == EPISODES_ALL


def _retried_job(cli: HarborCli):
    """First attempt hangs into the agent timeout (2 s), the retry succeeds."""
    log = cli.work / "attempts.jsonl"
    proc = cli.run("e", "--plugin", "harbor-hooks", "--pk", f"output={cli.work / 'rows.jsonl'}",
                   "--max-retries", "1", "--retry-include", "AgentTimeoutError",
                   "--retry-exclude", "NoSuchError", "--agent-timeout-multiplier", "0.1",
                   "--ae", f"HARBOR_TEST_FAIL_ONCE={cli.work / 'failed-once'}",
                   env={"ATTEMPTS_LOG": str(log)})
    assert proc.returncode == 0, show(proc)
    assert (cli.work / "failed-once").exists()  # the first attempt did hang
    result = json.loads((cli.jobs / "e" / "result.json").read_text())
    assert result["stats"]["n_retries"] == 1 and result["stats"]["n_completed_trials"] == 1
    return read_jsonl(log)


def test_e_retried_trial_export_has_final_rows_only(cli):
    attempts = _retried_job(cli)
    assert attempts[-1]["exception"] is None and attempts[-1]["reward"] == 1.0
    assert len(read_jsonl(cli.work / "rows.jsonl")) == EPISODES_ALL


def test_e_on_trial_complete_once_per_trial(cli):
    attempts = _retried_job(cli)
    assert len(attempts) == 1, attempts


@pytest.mark.parametrize("kwarg", ["episodes=bogus", "bogus=1"])
def test_f_bad_kwarg_is_a_short_error(cli, kwarg):
    proc = cli.run("f", "--plugin", "harbor-hooks", "--pk", kwarg)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("harbor-hooks: ")]
    assert len(lines) == 1 and ("bogus" in lines[0]), show(proc)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_f_bad_kwarg_leaves_no_job_folder(cli):
    proc = cli.run("f", "--plugin", "harbor-hooks", "--pk", "episodes=bogus")
    assert proc.returncode != 0
    assert not (cli.jobs / "f").exists(), sorted(p.name for p in (cli.jobs / "f").iterdir())
