"""Run Harbor 0.24's real `harbor run` CLI, docker-less, with our `harbor-hooks` plugin.

Shared by tests/test_harbor_run.py and tests/harbor_run_probes.py. Standard library only.

    from harbor_run_cli import skip_reason, HarborCli
    cli = HarborCli(work=tmp_path)                 # jobs go to tmp_path/jobs
    proc = cli.run("--job-name", "j", "--plugin", "harbor-hooks", "--pk", "output=rows.jsonl")

`harbor` is the venv's console script (tests/harbor_env.py builds the venv with Harbor
0.24.0 and `pip install -e` of this checkout, so `harbor_hooks` and our `harbor.plugins`
entry point come from /work/main). Each trial runs in tests/harbor_nsenv.py's
NamespaceEnvironment (`--env harbor_nsenv:NamespaceEnvironment`, tests/ on PYTHONPATH),
the agent is `oracle` and the task tests/data/harbor-task (its solve.sh writes an ATIF
trajectory, so there are rows to export).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from harbor_env import harbor_python, harbor_unavailable_reason, venv_env

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
HARBOR_TASK = TESTS / "data" / "harbor-task"
ENV_IMPORT_PATH = "harbor_nsenv:NamespaceEnvironment"
RUN_TIMEOUT = 120  # seconds per harbor command (a run takes ~2 s)


def skip_reason() -> str | None:
    """Why `harbor run` cannot be driven here (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (the nsenv environment uses unshare --mount and mount --bind)"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH (util-linux)"
    if harbor_python() is None:
        return f"no Harbor 0.24.0 venv: {harbor_unavailable_reason()}"
    return None


def install_site(package_dir: Path, target: Path) -> Path:
    """pip-install a harbor_hooks plugin package into a folder only our PYTHONPATH sees."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(package_dir)],
                   check=True, capture_output=True, timeout=600)
    return target


ATTEMPTS_PLUGIN = '''
"""Records, for every on_trial_complete, the trial's result.json as it is at that moment."""
import json, os
from pathlib import Path
from harbor_hooks import hookimpl

class Attempts:
    @hookimpl
    def on_trial_complete(self, trial_dir, settings):
        if not os.environ.get("ATTEMPTS_LOG"):
            return
        try:
            r = json.loads((Path(trial_dir) / "result.json").read_text())
            exc = (r.get("exception_info") or {}).get("exception_type")
            reward = ((r.get("verifier_result") or {}).get("rewards") or {}).get("reward")
        except Exception as e:
            exc, reward = f"unreadable: {type(e).__name__}", None
        with open(os.environ["ATTEMPTS_LOG"], "a") as fh:
            fh.write(json.dumps({"trial_dir": str(trial_dir), "exception": exc,
                                 "reward": reward}) + "\\n")

plugin = Attempts()
'''


def write_attempts_plugin(folder: Path) -> Path:
    """A tiny extra harbor_hooks plugin (entry point `attempts`), as a package folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hh_attempts.py").write_text(ATTEMPTS_PLUGIN)
    (folder / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "hh-attempts"
        version = "0.1.0"

        [project.entry-points.harbor_hooks]
        attempts = "hh_attempts:plugin"

        [tool.hatch.build.targets.wheel]
        include = ["hh_attempts.py"]
        """))
    return folder


# Harbor's own trace export (harbor.utils.traces_utils.export_traces, what
# `harbor run --export-traces` and `harbor traces export` call) with one change: Harbor
# refuses agents without its ATIF capability ("oracle does not support Harbor's
# trajectory format (ATIF), cannot export traces"), so the oracle is marked ATIF-capable
# for this call. argv: job_dir episodes out.jsonl
HARBOR_EXPORT = r"""
import json, sys
from harbor.agents.oracle import OracleAgent
from harbor.utils.traces_utils import export_traces
OracleAgent.capabilities = OracleAgent.capabilities.model_copy(update={"atif": True})
ds = export_traces(root=sys.argv[1], recursive=True, episodes=sys.argv[2], use_rich_progress=False)
with open(sys.argv[3], "w") as fh:
    for row in ds:
        fh.write(json.dumps(row, default=str) + "\n")
"""


class HarborCli:
    """`harbor ...` subprocesses in a work folder: jobs in work/jobs, logs of hook calls
    (tests/plugin_pkg's recorder, when its site is given) in work/calls.jsonl."""

    def __init__(self, work: Path, sites: list[Path] | tuple[Path, ...] = ()):
        self.python = harbor_python()
        assert self.python is not None, harbor_unavailable_reason()
        self.harbor_bin = self.python.parent / "harbor"
        self.work = Path(work)
        self.jobs = self.work / "jobs"
        self.sites = [Path(s) for s in sites]
        self.calls_log = self.work / "calls.jsonl"
        self.hf_home = self.work / "hf-home"  # an empty HF home: no stored Hub token is used

    def env(self, **extra: str) -> dict[str, str]:
        """The venv's environment: none of ours (no import paths, no HARBOR_HOOKS_*, no Hub
        token), tests/ and the plugin sites on PYTHONPATH, no telemetry or network lookups."""
        self.hf_home.mkdir(parents=True, exist_ok=True)
        return venv_env(drop=("HF_TOKEN", "HUGGINGFACE_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME"), **{
            "PYTHONPATH": os.pathsep.join([str(TESTS), *map(str, self.sites)]),
            "TESTPLUGIN_LOG": str(self.calls_log), "HF_HOME": str(self.hf_home), "COLUMNS": "160",
            "NO_COLOR": "1", **extra})

    def command(self, *args: str) -> list[str]:
        return [str(self.harbor_bin), *args]

    def run_args(self, job_name: str, *args: str, task: Path = HARBOR_TASK) -> list[str]:
        """`harbor run` of the test task with the oracle in the nsenv environment."""
        return ["run", "-p", str(task), "-a", "oracle", "--env", ENV_IMPORT_PATH,
                "-o", str(self.jobs), "--job-name", job_name, "-y", "-q", *args]

    def harbor(self, *args: str, env: dict[str, str] | None = None,
               timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              cwd=self.work, env=self.env(**(env or {})), timeout=timeout)

    def run(self, job_name: str, *args: str, env: dict[str, str] | None = None,
            task: Path = HARBOR_TASK) -> subprocess.CompletedProcess:
        return self.harbor(*self.run_args(job_name, *args, task=task), env=env)

    def calls(self) -> list[dict]:
        if not self.calls_log.exists():
            return []
        return [json.loads(line) for line in self.calls_log.read_text().splitlines() if line]

    def harbor_rows(self, job_dir: Path, episodes: str, out: Path) -> list[dict]:
        """Harbor's own export rows for a job (see HARBOR_EXPORT)."""
        proc = subprocess.run([str(self.python), "-c", HARBOR_EXPORT, str(job_dir), episodes, str(out)],
                              capture_output=True, text=True, env=self.env(), timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [json.loads(line) for line in out.read_text().splitlines() if line]


def shown(argv: list[str]) -> str:
    """A command line for a report, with the venv's harbor shortened to `harbor`."""
    return " ".join(["harbor" if i == 0 else shlex.quote(a) for i, a in enumerate(argv)])


def trial_dirs(job_dir: Path) -> list[Path]:
    return sorted(p for p in Path(job_dir).iterdir() if (p / "result.json").is_file()) \
        if Path(job_dir).is_dir() else []
