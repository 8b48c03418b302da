"""The local engine: tasks run in a pool of worker processes on this machine.

Tasks are submitted a few ahead of the one awaited, so what waits for a worker does not
grow with the job; results come back in task order.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

import pyarrow as pa

from harbor_hooks.imports import absent
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.redact import Redactor
from harbor_hooks.pipeline.shards import TaskResult
from harbor_hooks.pipeline.tasks import export_task
from harbor_hooks.readers.meta import JobResults

TASKS_AHEAD = 4  # per worker: submitted before the one awaited is done
PARENT_CHECK_SECONDS = 0.5  # how soon an orphaned worker ends

Tasks = Iterator[tuple[int, tuple[str, list[str], list | None]]]  # (index, (root, trials, known))


def _worker_init(parent: int | None) -> None:
    """A worker ends with the process that made it (parent: its pid when known), leaves
    Ctrl-C to it (the parent stops the pool: a worker interrupted in its queue would hang
    it), and makes pyarrow's first conversion without pandas (see _without_pandas)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(parent or os.getppid())
    _without_pandas()


def _end_with_parent(parent: int) -> None:
    """A worker whose parent is killed (SIGKILL, the OOM killer) would wait for tasks
    forever, its task pipe held open by its siblings: it ends once it is orphaned."""
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="harbor-hooks-parent-watch", daemon=True).start()


def _without_pandas() -> None:
    """pyarrow imports pandas (~0.25 s) at its first conversion, only to recognise pandas
    objects; worker rows are plain Python, so a worker that has not imported pandas lets
    pyarrow find it absent (and dateutil, imported there to recognise its relativedelta).
    Never done in the caller's process, where pandas may be wanted."""
    if "pandas" in sys.modules:
        return
    try:
        with absent("pandas", "dateutil"):  # dateutil: to recognise its relativedelta (5 ms)
            pa.array([0])
    except Exception:  # an optimisation only: never fail a worker over it
        pass


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is the fastest start; with other threads alive (hook service), forkserver is safe
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver")


@contextmanager
def _frozen_heap(context: multiprocessing.context.BaseContext) -> Iterator[None]:
    """Forked workers inherit this process's objects; frozen (gc.freeze), a worker's garbage
    collections do not walk them, which would copy every page they sit on (on the benchmark
    job: half a worker's page faults, and about 20 MB of the process tree's peak PSS)."""
    if context.get_start_method() != "fork":
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the pool at once: pending tasks cancelled, running workers killed."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=1)


def run_tasks(tasks: Tasks, opts: ExportOptions, split_by: str | None, workdir: str,
              done: Callable[[TaskResult, int], None]) -> None:
    """Run every task, calling done(result, trials in the task) in task order."""
    workers = default_workers() if opts.workers is None else max(1, opts.workers)
    first = list(itertools.islice(tasks, workers))  # sizes the pool: no idle workers forked
    context = _pool_context()
    # with fork, even one worker runs in a child: in this process pyarrow would import pandas
    # (see _without_pandas), which costs more than a fork; a fresh (forkserver) one costs more
    if not first or (context.get_start_method() != "fork" and (workers == 1 or len(first) == 1)):
        for i, (root, trials, known) in itertools.chain(first, tasks):
            done(export_task(i, trials, root, opts, split_by, workdir, known), len(trials))
        return
    if context.get_start_method() == "fork":
        # made here once, for the forked workers to share instead of each making them:
        # the index of the first trials' job-level result.json (it lists every trial),
        # and the compiled redaction patterns
        _, (_, trials, _) = first[0]
        JobResults().for_trial(trials[0])
        if opts.redact:
            Redactor(opts.redact_patterns)
    with _frozen_heap(context), ProcessPoolExecutor(
            max_workers=len(first), mp_context=context, initializer=_worker_init,
            initargs=(os.getpid() if context.get_start_method() == "fork" else None,)) as pool:
        # a few tasks ahead of the one awaited, the next submitted as one is done (and
        # discovered then): the trials waiting for a worker do not grow with the job
        pending = itertools.chain(first, tasks)
        in_flight: deque[tuple[Future, int]] = deque()

        def submit(count: int) -> None:
            for i, (root, trials, known) in itertools.islice(pending, count):
                in_flight.append((pool.submit(export_task, i, trials, root, opts, split_by, workdir, known),
                                  len(trials)))

        try:
            submit(TASKS_AHEAD * len(first))
            while in_flight:
                future, n_trials = in_flight.popleft()
                result = future.result()
                submit(1)
                done(result, n_trials)
        except BaseException:  # Ctrl-C, SIGTERM, a failed task: stop now, not after the queue
            _stop(pool)
            raise
