"""Inside Harbor: `harbor run --plugin harbor-hooks` fires our hooks from Harbor's own job.

Harbor >= 0.24 loads job plugins from the `harbor.plugins` entry-point group:
objects with `async on_job_start(job)` and `async on_job_end(job_result)`.
`--plugin-kwarg KEY=VALUE` (`--pk`) sets any HooksSettings field (e.g. episodes=last,
push=true, repo=org/name); `config=job.yaml` (or HARBOR_HOOKS_CONFIG, or harbor's own
`-c job.yaml`) reads the YAML's `export:` section. `traces` defaults to true here, under
the environment and the YAML.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from harbor_hooks.errors import HarborHooksError
from harbor_hooks.hooks.manager import HookFailure, call_hook, get_plugin_manager
from harbor_hooks.hooks.runner import trial_dir_of_event
from harbor_hooks.log import get_logger
from harbor_hooks.publish import check_push_ready
from harbor_hooks.settings import HooksSettings, load_settings, yaml_section


class HarborHooksJobPlugin:
    def __init__(self, **kwargs: Any) -> None:
        try:
            config = kwargs.pop("config", None) or os.environ.get("HARBOR_HOOKS_CONFIG") or _harbor_config_arg()
            section = yaml_section(_read_yaml(config)) if config else None
            self.settings = load_settings(section, defaults={"traces": True},
                                          **{k: _coerced(k, v) for k, v in kwargs.items()})
            if self.settings.traces:
                check_push_ready(self.settings.push_options())  # before any trial runs
        except HarborHooksError as exc:  # one line, and no job folder left for a job never run
            if Path(sys.argv[0]).name != "harbor":
                raise  # Harbor's Job API, in a program of the user's: the error as it is
            _refuse(harbor_spelling(str(exc)))
        self.failures: list[HookFailure] = []
        self.job_dir: Path | None = None
        self.retry: Any = None
        self.attempts: Counter = Counter()
        self._pm = get_plugin_manager()

    async def on_job_start(self, job: Any) -> None:
        self.job_dir = Path(job.job_dir).resolve()  # trial dirs arrive absolute
        self.retry = getattr(getattr(job, "config", None), "retry", None)
        job.on_trial_ended(self._trial_ended)

    async def _trial_ended(self, event: Any) -> None:
        name = getattr(getattr(event, "config", None), "trial_name", None)
        self.attempts[name] += 1
        if _retried(event, self.retry, self.attempts[name]):
            return  # Harbor deletes this attempt's folder and runs the trial again
        trial_dir = trial_dir_of_event(event)
        self.failures += await asyncio.to_thread(
            call_hook, self._pm, "on_trial_complete", trial_dir=trial_dir, settings=self.settings)

    async def on_job_end(self, job_result: Any) -> None:
        if self.job_dir is None:
            return
        self.failures += await asyncio.to_thread(
            call_hook, self._pm, "on_job_complete", job_dir=self.job_dir, settings=self.settings)
        if self.failures:  # reported together at the job's end; each was logged as it happened
            get_logger().error(f"{len(self.failures)} hook failure(s) during this run",
                               failures=[f.line() for f in self.failures])


def _retried(event: Any, retry: Any, attempt: int) -> bool:
    """Whether Harbor will run this trial again (its TrialQueue's rule): the attempt failed
    with an exception its retry config includes and does not exclude, and retries remain."""
    info = getattr(getattr(event, "result", None), "exception_info", None)
    if info is None or retry is None:
        return False
    kind = getattr(info, "exception_type", None)
    exclude, include = getattr(retry, "exclude_exceptions", None), getattr(retry, "include_exceptions", None)
    if (exclude and kind in exclude) or (include and kind not in include):
        return False
    return attempt <= getattr(retry, "max_retries", 0)


def _coerced(name: str, value: Any) -> Any:
    """Harbor JSON-decodes --pk values (revision=2025 arrives as the int 2025): a number
    given to a text option is that text again."""
    field = HooksSettings.model_fields.get(name)
    if field is None or isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
        return value
    kinds = (field.annotation, *typing.get_args(field.annotation))
    return str(value) if str in kinds and int not in kinds and float not in kinds else value


def _harbor_config_arg() -> str | None:
    """The job config harbor itself was given (`harbor run -c job.yaml`), whose `export:`
    section Harbor's JobConfig drops."""
    if Path(sys.argv[0]).name != "harbor":
        return None
    args = sys.argv[1:]
    for k, arg in enumerate(args):
        if arg in ("-c", "--config") and k + 1 < len(args):
            return args[k + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _read_yaml(path: str) -> Any:
    from harbor_hooks.errors import SettingsError

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read the job config ({type(exc).__name__}: {exc})") from None


def harbor_spelling(message: str) -> str:
    """A message naming our flags, as `harbor run` spells them: --pk NAME=."""
    message = re.sub(r"--([a-z][a-z-]*) / --export-\1", lambda m: f"--pk {m[1].replace('-', '_')}=", message)
    message = re.sub(r"--(repo|token|push)\b", lambda m: f"--pk {m[1]}=", message)
    return re.sub(r", [a-z_]+= in Python\)", ")", message)


def _refuse(message: str) -> typing.NoReturn:
    """Stop `harbor run` with one line (typer.Exit, as Harbor's own CLI errors end), removing
    the job folder Harbor made just before (it holds only job.log: no trial ran)."""
    import typer

    try:
        job = sys._getframe(2).f_locals.get("job")  # attach_job_plugin(job, ...): our caller's caller
    except ValueError:  # no such frame
        job = None
    folder = getattr(job, "job_dir", None)
    if folder is not None and Path(folder).is_dir() and {p.name for p in Path(folder).iterdir()} <= {"job.log"}:
        for child in Path(folder).iterdir():
            child.unlink()
        Path(folder).rmdir()
    sys.stderr.write(f"harbor-hooks: {message}\n")
    raise typer.Exit(2)
