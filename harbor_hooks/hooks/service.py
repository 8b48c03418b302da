"""The hook service: run a job (or a sweep), fire the hooks, report every failure at the end."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_hooks.log import get_logger
from harbor_hooks.hooks.manager import HookFailure, call_hook, get_plugin_manager
from harbor_hooks.errors import TraceReadError, UsageError
from harbor_hooks.hooks.runner import prepare_config, run_job, task_name
from harbor_hooks.settings import HooksSettings
from harbor_hooks.readers.discover import finished_trials
from harbor_hooks.readers.meta import JobResults, load_trial_meta


@dataclass
class RunOutcome:
    job_code: int
    failures: list[HookFailure] = field(default_factory=list)


def _trial_hook(pm, settings: HooksSettings, failures: list[HookFailure]):
    """on_trial_complete for each finished trial, failures collected."""
    def on_trial(trial_dir: Path) -> None:
        failures.extend(call_hook(pm, "on_trial_complete", trial_dir=trial_dir, settings=settings))
    return on_trial


def run_with_hooks(config: dict[str, Any] | None, settings: HooksSettings, *,
                   job_dir: Path | None = None, runner_cmd: str | None = None,
                   agent: str | None = None, model: str | None = None) -> RunOutcome:
    """Run the job (or take a finished job_dir), firing on_trial_complete and on_job_complete."""
    pm = get_plugin_manager()
    failures: list[HookFailure] = []
    if job_dir is not None:  # a finished job: its end export reads the trials in parallel,
        settings = settings.model_copy(update={"stream": False})  # faster than one by one
    on_trial = _trial_hook(pm, settings, failures)
    if job_dir is not None:
        code = 0
        for name in finished_trials(job_dir):
            on_trial(Path(job_dir) / name)
    else:
        cfg = prepare_config(config or {}, agent=agent, model=model)
        get_logger().info("running job", job_name=cfg["job_name"])
        code, job_dir = run_job(cfg, on_trial, runner_cmd)
    failures.extend(call_hook(pm, "on_job_complete", job_dir=job_dir, settings=settings))
    return RunOutcome(code, failures)


def load_hints(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read hints file ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: --hints-file must be a JSON object {{task name: hint}}")
    return {str(k): str(v) for k, v in data.items()}


def succeeded_tasks(job_dir: Path) -> set[str]:
    """Tasks with at least one success in the job, exactly as --filter success decides."""
    jobs = JobResults()
    done = set()
    for name in finished_trials(job_dir) if Path(job_dir).is_dir() else []:
        try:
            meta = load_trial_meta(os.path.join(job_dir, name), jobs)
        except TraceReadError:
            continue
        if meta.success:
            done.add(meta.task)
    return done


def run_sweeps(config: dict[str, Any], settings: HooksSettings, *, max_sweeps: int = 3,
               trials_per_task: int = 2, hint: str | None = None, hints: dict[str, str] | None = None,
               runner_cmd: str | None = None, agent: str | None = None,
               model: str | None = None) -> RunOutcome:
    """Sweep: run the remaining tasks, drop those that succeeded, stop early; then the sweep hook."""
    log = get_logger()
    pm = get_plugin_manager()
    failures: list[HookFailure] = []
    base_name = str(config.get("job_name") or "sweep")
    remaining = list(config.get("tasks") or [])
    job_dirs: list[Path] = []
    worst = 0
    on_trial = _trial_hook(pm, settings, failures)
    for index in range(1, max_sweeps + 1):
        if not remaining:
            log.info("all tasks succeeded; stopping early", sweep=index)
            break
        runs: list[tuple[str, list[Any], str | None]]
        if hints:  # one job per task, each with its own hint (as Harbor does)
            runs = [(f"{base_name}.sweep-{index}.{task_name(t)}", [t], hints.get(task_name(t), hint))
                    for t in remaining]
        else:
            runs = [(f"{base_name}.sweep-{index}", remaining, hint)]
        succeeded: set[str] = set()
        log.info("starting sweep", sweep=index, tasks=len(remaining), trials_per_task=trials_per_task)
        for job_name, tasks, task_hint in runs:
            cfg = prepare_config(config, job_name=job_name, agent=agent, model=model,
                                 n_attempts=trials_per_task, tasks=tasks, hint=task_hint)
            code, job_dir = run_job(cfg, on_trial, runner_cmd)
            worst = worst or code
            job_dirs.append(job_dir)
            failures.extend(call_hook(pm, "on_job_complete", job_dir=job_dir, settings=settings))
            succeeded |= succeeded_tasks(job_dir)
        before = len(remaining)
        remaining = [t for t in remaining if task_name(t) not in succeeded]
        log.info("sweep complete", sweep=index, tasks_before=before, tasks_remaining=len(remaining))
    failures.extend(call_hook(pm, "on_sweep_complete", job_dirs=job_dirs, settings=settings))
    return RunOutcome(worst, failures)
