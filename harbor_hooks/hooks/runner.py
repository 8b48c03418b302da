"""How a job runs: Harbor's Python API when harbor is importable, otherwise a runner command.

With a runner command, the config (with job_name set) is written to a file and
substituted for `{config}`; trials are announced as their result.json appears.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from harbor_hooks.errors import RunnerError
from harbor_hooks.readers.discover import is_finished_trial
from harbor_hooks.log import get_logger

OUR_SECTIONS = ("export", "hooks", "runner")


def load_job_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunnerError(f"{path}: cannot read job config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else __import__("json").loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise RunnerError(f"{path}: invalid job config ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RunnerError(f"{path}: a job config must be a mapping")
    return data


def prepare_config(config: dict[str, Any], *, job_name: str | None = None, agent: str | None = None,
                   model: str | None = None, n_attempts: int | None = None,
                   tasks: list[Any] | None = None, hint: str | None = None) -> dict[str, Any]:
    """A copy of config with the run's overrides applied and a job_name set."""
    cfg = copy.deepcopy(config)
    cfg["job_name"] = job_name or cfg.get("job_name") or datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    agents = cfg.get("agents")
    if not isinstance(agents, list) or not agents:
        agents = [cfg.pop("agent")] if isinstance(cfg.get("agent"), dict) else [{}]
    agents = [dict(a) if isinstance(a, dict) else {} for a in agents]
    for entry in agents:
        if agent:
            entry["name"] = agent
        if model:
            entry["model_name"] = model
        if hint is not None:
            entry["kwargs"] = {**(entry.get("kwargs") or {}), "hint": hint}
    cfg["agents"] = agents
    if n_attempts is not None:
        cfg["n_attempts"] = n_attempts
    if tasks is not None:
        cfg["tasks"] = tasks
    return cfg


def job_dir_of(config: dict[str, Any], base: str | os.PathLike = ".") -> Path:
    """Where Harbor writes the job: <jobs_dir>/<job_name>."""
    return Path(base) / str(config.get("jobs_dir") or "jobs") / str(config["job_name"])


def task_name(task: Any) -> str:
    """A task's name as Harbor derives it: a path's last component, else its name or id."""
    if isinstance(task, str):
        return Path(task).name
    if isinstance(task, dict):
        for key in ("name", "task_name", "id"):
            if task.get(key):
                return str(task[key])
        if task.get("path"):
            return Path(str(task["path"])).name
    return str(task)


def harbor_available() -> bool:
    try:
        import harbor.job  # noqa: F401
    except Exception:
        return False
    return True


class TrialWatcher:
    """Announces each trial of a job dir once, when its result.json appears."""

    def __init__(self, job_dir: Path, on_trial: Callable[[Path], None], interval: float = 0.2):
        self.job_dir, self.on_trial, self.interval = job_dir, on_trial, interval
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trial-watcher", daemon=True)

    def scan(self) -> None:
        try:
            entries = sorted(os.scandir(self.job_dir), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name in self.seen or not entry.is_dir(follow_symlinks=False):
                continue
            if is_finished_trial(entry.path):
                self.seen.add(entry.name)
                self.on_trial(Path(entry.path))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def __enter__(self) -> "TrialWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.scan()  # the trials that finished in the last interval


def run_command(command: str, config: dict[str, Any], on_trial: Callable[[Path], None],
                cwd: str | os.PathLike = ".") -> tuple[int, Path]:
    """Run the job through a command; return (exit code, job dir)."""
    job_dir = job_dir_of(config, cwd)
    runnable = {k: v for k, v in config.items() if k not in OUR_SECTIONS}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{config['job_name']}-",
                                     delete=False) as fh:
        yaml.safe_dump(runnable, fh, sort_keys=False)
        config_path = fh.name
    argv = [part.replace("{config}", config_path) for part in shlex.split(command)]
    if "{config}" not in command:
        argv.append(config_path)
    try:
        with TrialWatcher(job_dir, on_trial):
            try:
                code = subprocess.call(argv, cwd=cwd)
            except OSError as exc:
                raise RunnerError(f"runner command {argv[0]!r} could not start: {exc.strerror or exc}") from None
    finally:
        os.unlink(config_path)
    return code, job_dir


def run_harbor(config: dict[str, Any], on_trial: Callable[[Path], None]) -> tuple[int, Path]:
    """Run the job with Harbor's Python API (`harbor` installed in this environment)."""
    import asyncio

    from harbor.job import Job
    from harbor.models.job.config import JobConfig

    cfg = JobConfig.model_validate({k: v for k, v in config.items() if k not in OUR_SECTIONS})

    async def _run() -> Path:
        job = await Job.create(cfg)

        async def _ended(event: Any) -> None:
            on_trial(trial_dir_of_event(event))

        job.on_trial_ended(_ended)
        await job.run()
        return Path(job.job_dir)

    try:
        return 0, asyncio.run(_run())
    except Exception as exc:  # the job's own failure: reported, hooks still fire
        get_logger().error("harbor job failed", error=f"{type(exc).__name__}: {exc}")
        return 1, job_dir_of(config)


def trial_dir_of_event(event: Any) -> Path:
    """A Harbor TrialHookEvent's trial directory."""
    uri = getattr(getattr(event, "result", None), "trial_uri", None)
    if isinstance(uri, str) and uri.startswith("file:"):
        # Harbor writes Path.as_uri(): percent-encoded (spaces, non-ASCII)
        return Path(url2pathname(urlparse(uri).path))
    return Path(event.config.trials_dir) / event.config.trial_name


def run_job(config: dict[str, Any], on_trial: Callable[[Path], None],
            command: str | None = None) -> tuple[int, Path]:
    """Run with the command when one is given (flag or runner.command), else Harbor's API."""
    runner = config.get("runner") if isinstance(config.get("runner"), dict) else {}
    command = command or runner.get("command")
    if command:
        return run_command(command, config, on_trial)
    if harbor_available():
        return run_harbor(config, on_trial)
    raise RunnerError("no job runner: install harbor (Python >= 3.12), or give a command with "
                      "--runner-cmd or runner.command in the job config")

