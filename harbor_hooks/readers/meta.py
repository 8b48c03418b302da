"""TrialMeta: who ran what, when, and how it ended, from a trial's result/config files."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from typing import Any

from harbor_hooks.readers.files import TrialFiles, read_json
from harbor_hooks.errors import TraceReadError
from harbor_hooks.report import ExportReport, Skip


@dataclass(frozen=True)
class TrialMeta:
    trial_dir: str
    agent: str
    model: str
    model_provider: str
    date: str
    task: str
    trial_name: str
    run_id: str
    result: str | None  # "1.0", or the exception type, or None when unknown
    success: bool  # reward > 0, exactly as Harbor's --filter decides it
    own_result: str | None = None  # the result the trial's own result.json gives (--incremental)

    @property
    def reward(self) -> float | None:
        return _finite(self.result)

    @property
    def exception(self) -> str | None:
        return self.result if self.result is not None and self.reward is None else None


def _finite(result: str | None) -> float | None:
    """The reward a result names, or None (an exception type, "inf", "nan")."""
    try:
        value = float(result) if result is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """Metadata values as strings (a number where a name belongs must not break the schema)."""
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    return str(value)


def _first(*values: Any, default: str) -> str:
    for value in values:
        text = _text(value)
        if text:
            return text
    return default


def _reward_text(value: Any) -> str | None:
    """A reward as Harbor writes it ("1.0"), or None when it is no finite number (an integer
    beyond a double, "inf", NaN: unknown, so never a success)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return str(number) if math.isfinite(number) else None


@dataclass(frozen=True)
class _JobIndex:
    identity: tuple[int, int, int, int]  # device, inode, mtime, size of the file indexed
    results: dict[str, str] | None  # trial name -> result; None when the file has no stats
    report: ExportReport  # what reading it reported (a bad file is skipped, odd bytes noted)


# Job-level result.json files indexed once per process: every 64-trial task of a worker
# would otherwise parse its job's whole file again, which grows with the job (quadratic
# in the trials: at 100k trials, about half of the export's CPU). Keyed by the file's
# identity, so a file rewritten since is read again; the last few jobs only (trials come
# job by job).
_JOB_INDEXES: dict[str, _JobIndex] = {}
MAX_CACHED_JOBS = 8


def _job_index(path: str) -> _JobIndex | None:
    """The index of the job-level result.json at path, or None when there is no such file."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    identity = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _JOB_INDEXES.get(path)
    if cached is not None and cached.identity == identity:
        return cached
    report = ExportReport()
    data = None
    try:
        data = read_json(path, report)
    except TraceReadError as exc:
        report.skip("file", exc.path, exc.reason)
    results = _index_job_results(data) if isinstance(data, dict) and "stats" in data else None
    _JOB_INDEXES.pop(path, None)
    while len(_JOB_INDEXES) >= MAX_CACHED_JOBS:
        del _JOB_INDEXES[next(iter(_JOB_INDEXES))]
    _JOB_INDEXES[path] = found = _JobIndex(identity, results, report)
    return found


class JobResults:
    """Job-level result.json files (aggregate stats), looked up once per directory; what
    reading one reported goes into this lookup's report (each export's report has it)."""

    def __init__(self, report: ExportReport | None = None):
        self._by_dir: dict[str, dict[str, str] | None] = {}
        self._by_parent: dict[str, dict[str, str] | None] = {}
        self._report = report

    def _load(self, directory: str) -> dict[str, Any] | None:
        if directory not in self._by_dir:
            index = _job_index(os.path.join(directory, "result.json"))
            if index is not None and self._report is not None:  # copies: reports are redacted in place
                self._report.skips.extend(Skip(k.kind, k.path, k.reason) for k in index.report.skips)
                self._report.notes.extend(index.report.notes)
            self._by_dir[directory] = index.results if index is not None else None
        return self._by_dir[directory]

    def for_trial(self, trial_dir: str) -> dict[str, str] | None:
        """The nearest job-level result.json above the trial (Harbor looks up to six levels)."""
        parent = os.path.dirname(os.path.abspath(trial_dir))
        if parent not in self._by_parent:  # the trials of a job share their parent
            self._by_parent[parent] = self._nearest(parent)
        return self._by_parent[parent]

    def _nearest(self, current: str) -> dict[str, str] | None:
        for _ in range(6):
            data = self._load(current)
            if data is not None:
                return data
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        return None


def _index_job_results(job: dict[str, Any]) -> dict[str, str]:
    """trial name -> result, as Harbor looks it up: evals in order, each eval's
    exception_stats before its reward buckets, the first hit winning."""
    index: dict[str, str] = {}
    evals = _as_dict(_as_dict(job.get("stats")).get("evals"))
    for eval_data in evals.values():
        eval_data = _as_dict(eval_data)
        for exc_name, entries in _as_dict(eval_data.get("exception_stats")).items():
            for name in entries if isinstance(entries, list) else []:
                index.setdefault(str(name), str(exc_name))
        reward_map = _as_dict(_as_dict(eval_data.get("reward_stats")).get("reward"))
        for reward_value, entries in reward_map.items():
            text = _reward_text(reward_value) or str(reward_value)
            for name in entries if isinstance(entries, list) else []:
                index.setdefault(str(name), text)
    return index


def _result_from_trial(raw: dict[str, Any]) -> str | None:
    exc_type = _as_dict(raw.get("exception_info")).get("exception_type")
    if exc_type:
        return str(exc_type)
    verifier = _as_dict(raw.get("verifier_result"))
    reward = _as_dict(verifier.get("rewards")).get("reward")
    if reward is None:
        reward = verifier.get("reward")  # older layout
    return _reward_text(reward)


# The one function over 60 lines (tests/test_architecture.py allows one): each field of
# TrialMeta read as Harbor reads it, its fallbacks in order, kept together so that they can
# be checked against Harbor's traces_utils side by side.
def load_trial_meta(trial_dir: str, jobs: JobResults, files: TrialFiles | None = None) -> TrialMeta:
    """Read a finished trial's metadata; raise TraceReadError when it cannot be exported."""
    files = files or TrialFiles(trial_dir, ExportReport())
    report = files.report
    result_path = os.path.join(trial_dir, "result.json")
    try:
        raw = files.json(result_path)
    except TraceReadError as exc:
        if exc.reason == "file not found" and not os.path.lexists(result_path):
            raise TraceReadError(result_path, "trial has no result.json (still running or killed)") from None
        raise
    if not isinstance(raw, dict):
        raise TraceReadError(result_path, f"expected a JSON object, found {type(raw).__name__}")

    config = _as_dict(raw.get("config"))
    if not config:
        config_path = os.path.join(trial_dir, "config.json")
        if os.path.isfile(config_path):
            try:
                config = _as_dict(files.json(config_path))
            except TraceReadError as exc:
                if report is not None:
                    report.skip("file", exc.path, exc.reason)

    agent_cfg = _as_dict(config.get("agent"))
    if not agent_cfg and isinstance(config.get("agents"), list) and config["agents"]:
        agent_cfg = _as_dict(config["agents"][0])
    agent_info = _as_dict(raw.get("agent_info"))
    model_info = _as_dict(agent_info.get("model_info"))

    agent = _first(
        agent_cfg.get("name"), agent_info.get("name"), config.get("agent_name"),
        raw.get("agent_name"), default="",
    )
    if not agent:
        raise TraceReadError(result_path, "no agent name in result.json or config.json")

    trial_name = _first(raw.get("trial_name"), config.get("trial_name"), default="unknown-trial")
    own_result = _result_from_trial(raw)
    result = (jobs.for_trial(trial_dir) or {}).get(trial_name)
    if result is None:
        result = own_result
    reward = _finite(result)
    success = reward is not None and reward > 0.0

    return TrialMeta(
        trial_dir=trial_dir,
        agent=agent,
        model=_first(
            model_info.get("name"), agent_cfg.get("model_name"), agent_info.get("model_name"),
            config.get("engine"), default="unknown-model",
        ),
        model_provider=_first(
            model_info.get("provider"), agent_cfg.get("provider"), agent_info.get("provider"),
            config.get("engine"), default="unknown-provider",
        ),
        date=_first(raw.get("started_at"), raw.get("startedAt"), default=""),
        task=_first(raw.get("task_name"), config.get("task_name"), default="unknown-task"),
        trial_name=trial_name,
        run_id=_first(
            config.get("job_id"), config.get("job_name"), raw.get("job_id"),
            raw.get("run_id"), raw.get("trial_name"), default="unknown-run",
        ),
        result=result,
        success=success,
        own_result=own_result,
    )
