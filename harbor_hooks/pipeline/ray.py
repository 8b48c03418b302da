"""--engine ray: the same tasks on a Ray cluster, for jobs beyond one machine.

Each task (a batch of trials) runs as a Ray task with the same code as a local worker;
trials under an fsspec URL (s3://, gs://, file://) are copied to the task's scratch space
first (tasks.export_task, as on the local engine). A task returns its Arrow shards as bytes through the
object store (a cluster's nodes share no disk); the driver writes them into the export's
work folder, and the orchestrator goes on as with the local engine. `--ray-address`
joins a cluster, otherwise a local one starts with `--workers` CPUs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from harbor_hooks.errors import ExportFailed
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.shards import TaskResult
from harbor_hooks.pipeline.tasks import export_task
from harbor_hooks.report import ExportReport

RAY_MISSING = "--engine ray needs Ray: pip install 'harbor-hooks[ray]'"
TASKS_AHEAD_PER_CPU = 2


def _ray_task(index: int, trials: list[str], root: str, opts: ExportOptions, split_by: str | None,
              known: list | None) -> tuple[int, dict[str, tuple[str, bytes]], dict[str, int], ExportReport, Any]:
    """One task on a Ray worker: its shards as bytes, with its row counts, report and (with
    --incremental) trial records."""
    scratch = tempfile.mkdtemp(prefix="harbor-hooks-ray-")
    try:
        out = os.path.join(scratch, "shards")
        os.makedirs(out)
        result = export_task(index, trials, root, opts, split_by, out, known)
        import ray

        result.report.nodes[ray.get_runtime_context().get_node_id()] += 1  # where it ran
        blobs = {}
        for split, path in result.paths.items():
            with open(path, "rb") as fh:
                blobs[split] = (os.path.basename(path), fh.read())
        return index, blobs, result.rows, result.report, result.trials
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_tasks(tasks: Iterator[tuple[int, tuple[str, list[str], list | None]]], opts: ExportOptions,
              split_by: str | None, workdir: str, done: Callable[[TaskResult, int], None]) -> None:
    """Run every task on Ray, calling done(result, trials in the task) in task order."""
    try:
        import ray
    except ImportError:
        raise ExportFailed(RAY_MISSING) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=opts.ray_address, num_cpus=None if opts.ray_address else opts.workers,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(_ray_task)
        ahead = TASKS_AHEAD_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
        in_flight: deque = deque()

        def submit(count: int) -> None:
            for _ in range(count):
                task = next(tasks, None)
                if task is None:
                    return
                i, (root, trials, known) = task
                in_flight.append((remote.remote(i, trials, root, opts, split_by, known), len(trials)))

        submit(ahead)
        while in_flight:
            ref, n_trials = in_flight.popleft()
            index, blobs, rows, report, records = ray.get(ref)
            submit(1)
            paths = {}
            for split, (name, blob) in blobs.items():
                paths[split] = os.path.join(workdir, name)
                with open(paths[split], "wb") as fh:
                    fh.write(blob)
            done(TaskResult(index, paths, rows, report, records), n_trials)
    finally:
        if started:
            ray.shutdown()
