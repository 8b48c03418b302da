"""Probe how `harbor run --plugin harbor-hooks` behaves for the reported defects a-f and
`harbor job resume`; print, for each: the command, exit code, first lines of output, facts.

    python3 tests/harbor_run_probes.py [WORK_DIR]      # root, unshare, Harbor venv needed

tests/test_harbor_run.py asserts the same cases (the defects as strict xfails).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harbor_run_cli import (ENV_IMPORT_PATH, HARBOR_TASK, ROOT, HarborCli, install_site,  # noqa: E402
                            shown, skip_reason, trial_dirs, write_attempts_plugin)

BOX = tuple("│╭╰┃┏┗┡└┌━─")


def first_lines(text: str, n: int = 4) -> list[str]:
    """Output lines, without rich boxes, tables, progress bars and blank lines."""
    keep = [l.rstrip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith(BOX)
            and "━━━" not in l]
    return keep[:n]


def report(title: str, cli: HarborCli, argv: list[str], proc, facts: dict) -> None:
    print(f"== {title}")
    env = "".join(f"{k}={v} " for k, v in facts.pop("_env", {}).items())
    print(f"$ {env}{shown(cli.command(*argv))}")
    print(f"exit {proc.returncode}; stderr lines {len(proc.stderr.splitlines())}")
    for line in first_lines(proc.stderr):
        print(f"  err| {line[:230]}")
    for line in [l for l in proc.stdout.splitlines() if l.startswith("[traces]")][:3]:
        print(f"  out| {line[:230]}")
    for key, value in facts.items():
        print(f"  {key}: {value}")
    print()


def main() -> int:
    why = skip_reason()
    if why:
        print(f"skipped: {why}")
        return 0
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="harbor-probes-"))
    sites = [install_site(ROOT / "tests" / "plugin_pkg", work / "site-recorder"),
             install_site(write_attempts_plugin(work / "attempts-src"), work / "site-attempts")]
    cli = HarborCli(work, sites)

    def run(title, name, *args, env=None, facts=None, argv=None):
        cli.calls_log.unlink(missing_ok=True)
        argv = argv or cli.run_args(name, *args)
        proc = cli.harbor(*argv, env=env)
        job = cli.jobs / name
        extra = facts(job) if facts else {}
        base = {"_env": env or {}, "hook calls": [c["hook"] for c in cli.calls()],
                "job folder": sorted(p.name for p in job.iterdir()) if job.is_dir() else None}
        report(title, cli, argv, proc, {**base, **extra})
        return proc

    def rows(path):
        return lambda job: {"rows file": (len(Path(path).read_text().splitlines())
                                          if Path(path).exists() else "absent")}

    out = work / "rows.jsonl"
    run("baseline: harbor run + plugin + --export-traces", "base", "--plugin", "harbor-hooks",
        "--pk", f"output={out}", "--export-traces", facts=rows(out))

    cfg = work / "job-a.yaml"
    out_a = work / "rows-a.jsonl"
    cfg.write_text(f"job_name: a\njobs_dir: {cli.jobs}\nenvironment:\n  import_path: {ENV_IMPORT_PATH}\n"
                   f"agents:\n  - name: oracle\ntasks:\n  - path: {HARBOR_TASK}\n"
                   f"export:\n  output: {out_a}\n  episodes: last\n")
    run("a: job.yaml with export: {output, episodes: last}", "a",
        argv=["run", "-c", str(cfg), "--plugin", "harbor-hooks", "-y", "-q"],
        facts=lambda job: {**rows(out_a)(job),
                           "'export' in job config.json": "export" in (job / "config.json").read_text(),
                           "job traces/": sorted(p.name for p in (job / "traces").iterdir())
                           if (job / "traces").is_dir() else None})

    out_b = work / "rows-b.jsonl"
    run("b: HARBOR_HOOKS_TRACES=false", "b", "--plugin", "harbor-hooks", "--pk", f"output={out_b}",
        env={"HARBOR_HOOKS_TRACES": "false"}, facts=rows(out_b))

    run("c1: push=true, no repo, no token", "c1", "--plugin", "harbor-hooks", "--pk", "push=true",
        facts=lambda job: {"trials run": len(trial_dirs(job))})
    run("c2: push=true repo=my-org/traces, no token", "c2", "--plugin", "harbor-hooks",
        "--pk", "push=true", "--pk", "repo=my-org/traces",
        facts=lambda job: {"trials run": len(trial_dirs(job))})

    run("d1: --pk revision=2025", "d1", "--plugin", "harbor-hooks", "--pk", "revision=2025",
        "--pk", f"output={work / 'rows-d1.jsonl'}", facts=rows(work / "rows-d1.jsonl"))
    run("d2: --pk 'revision=\"2025\"'", "d2", "--plugin", "harbor-hooks", "--pk", 'revision="2025"',
        "--pk", f"output={work / 'rows-d2.jsonl'}", facts=rows(work / "rows-d2.jsonl"))

    attempts = work / "attempts.jsonl"
    run("e: retried trial (attempt 1 hits the agent timeout, attempt 2 passes)", "e",
        "--plugin", "harbor-hooks", "--pk", f"output={work / 'rows-e.jsonl'}", "--max-retries", "1",
        "--retry-include", "AgentTimeoutError", "--retry-exclude", "NoSuchError",
        "--agent-timeout-multiplier", "0.1", "--ae", f"HARBOR_TEST_FAIL_ONCE={work / 'failed-once'}",
        env={"ATTEMPTS_LOG": str(attempts)},
        facts=lambda job: {**rows(work / "rows-e.jsonl")(job),
                           "on_trial_complete saw": [(Path(a["trial_dir"]).name, a["exception"], a["reward"])
                                                     for a in map(json.loads, attempts.read_text().splitlines())],
                           "n_retries": json.loads((job / "result.json").read_text())["stats"]["n_retries"]})

    run("f1: --pk episodes=bogus", "f1", "--plugin", "harbor-hooks", "--pk", "episodes=bogus")
    run("f2: --pk bogus=1", "f2", "--plugin", "harbor-hooks", "--pk", "bogus=1")

    out_r = work / "rows-resume.jsonl"
    run("resume: harbor job resume of the finished baseline job", "base",
        argv=["job", "resume", "-p", str(cli.jobs / "base"), "--plugin", "harbor-hooks",
              "--pk", f"output={out_r}"], facts=rows(out_r))
    run("resume of f1's leftover folder", "f1",
        argv=["job", "resume", "-p", str(cli.jobs / "f1"), "--plugin", "harbor-hooks"])
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
