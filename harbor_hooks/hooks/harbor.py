"""Inside Harbor: `harbor run --plugin harbor-hooks` fires our hooks from Harbor's own job.

Harbor >= 0.24 loads job plugins from the `harbor.plugins` entry-point group:
objects with `async on_job_start(job)` and `async on_job_end(job_result)`.
`--plugin-kwarg KEY=VALUE` sets any HooksSettings field (e.g. episodes=last,
push=true, repo=org/name); `traces` defaults to true here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from harbor_hooks.hooks.manager import HookFailure, call_hook, get_plugin_manager
from harbor_hooks.log import get_logger
from harbor_hooks.hooks.runner import trial_dir_of_event
from harbor_hooks.settings import load_settings


class HarborHooksJobPlugin:
    def __init__(self, **kwargs: Any) -> None:
        self.flags = {"traces": True, **kwargs}
        self.failures: list[HookFailure] = []
        self.job_dir: Path | None = None
        self.settings = load_settings(None, **self.flags)  # invalid kwargs fail before the job
        self._pm = get_plugin_manager()

    async def on_job_start(self, job: Any) -> None:
        self.job_dir = Path(job.job_dir).resolve()  # trial dirs arrive absolute
        job.on_trial_ended(self._trial_ended)

    async def _trial_ended(self, event: Any) -> None:
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
