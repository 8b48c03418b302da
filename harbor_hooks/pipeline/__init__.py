"""The export pipeline: trial dirs -> rows (in workers, on an engine) -> Arrow shards.

A trial is read once, in a worker, and leaves it as rows written to an Arrow stream
shard; the parent keeps shard paths and the report, so memory is bounded by a worker's
batch, not by the job. Engines (local.py, ray.py) only run tasks: discovery before them
and the merge, dedupe and report after them are the same for both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

from harbor_hooks.formats import row_schema
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.sampling import VALIDATION, draw, draws_needed
from harbor_hooks.pipeline.shards import WORK_PREFIX, ExportResult, TaskResult, drop_duplicates, merge_results
from harbor_hooks.readers.discover import is_url, iter_trial_dirs, iter_trial_urls
from harbor_hooks.report import ExportReport

TRIALS_PER_TASK = 64  # fixed, so shard layout (and output bytes) do not depend on --workers


def trial_batches(roots: list[str], recursive: bool,
                  report: ExportReport) -> Iterator[tuple[str, list[str]]]:
    """(root, trial dirs) batches of TRIALS_PER_TASK trials, yielded as discovery finds them."""
    for root in roots:
        if not is_url(root) and not os.path.isdir(root):
            report.skip("trial", root, "path does not exist or is not a directory")
            continue
        batch: list[str] = []
        found = report.trials_found
        trials = iter_trial_urls(root, recursive) if is_url(root) else \
            iter_trial_dirs(root, recursive=recursive, report=report)
        for trial in trials:
            report.trials_found += 1
            batch.append(trial)
            if len(batch) == TRIALS_PER_TASK:
                yield root, batch
                batch = []
        if batch:
            yield root, batch
        if report.trials_found == found and not recursive:
            report.notes.append(f"{root} is not a trial directory (it has no agent/ folder); "
                                "use --recursive to export the trials under it")


def whole_job(opts: ExportOptions) -> bool:
    """Whether rows can be written out only once every task is done (duplicates and draws
    are decided across the job)."""
    return opts.dedupe or draws_needed(opts)


def _engine(opts: ExportOptions, roots: list[str]):
    if opts.engine == "ray":
        from harbor_hooks.pipeline import ray
        return ray.run_tasks
    from harbor_hooks.pipeline import local
    return local.run_tasks


def _whole_job_steps(results: list[TaskResult], shards: dict[str, list[str]], report: ExportReport,
                     opts: ExportOptions, on_shards: Callable[[dict[str, str]], None] | None) -> None:
    """--dedupe and the draws, made on every task's shards; then the shards given out."""
    if opts.dedupe:
        drop_duplicates(shards, report)  # in place: each task's shards keep their paths
    if draws_needed(opts):
        draw(shards, report, opts)  # in place, and the validation rows in shards of their own
    if on_shards is not None and whole_job(opts):
        for result in results:
            on_shards(result.paths)
        if VALIDATION in shards:
            on_shards({VALIDATION: path for path in shards[VALIDATION]})


def run_export(
    roots: str | os.PathLike | list[str | os.PathLike],
    opts: ExportOptions,
    *,
    split_by: str | None = None,
    workdir: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_shards: Callable[[dict[str, str]], None] | None = None,
    store: str | None = None,
) -> ExportResult:
    """Export every trial under one or more roots into Arrow shards.

    split_by: None (one "train" split), "outcome" (success/failure) or "source" (per trace
    source). on_shards, when given, is called with each task's shards (path by split) in
    export order, as soon as it and the tasks before it are done: outputs are written while
    the workers go on (with --dedupe, once all are done: duplicates are dropped across tasks).
    store (--incremental): the folder whose stored rows are reused (see store.py)."""
    roots = [os.fspath(r) for r in (roots if isinstance(roots, list) else [roots])]
    run_tasks = _engine(opts, roots)
    trials_store = None
    if store is not None:
        from harbor_hooks.pipeline.store import TrialStore
        trials_store = TrialStore(store, opts, split_by, roots, private=whole_job(opts))
    own_workdir = workdir is None
    # with a store, the work folder is in it: its shards are moved or linked into the store
    workdir = workdir or tempfile.mkdtemp(prefix=WORK_PREFIX, dir=store)
    os.makedirs(workdir, exist_ok=True)
    report = ExportReport()
    results: list[TaskResult] = []
    done_trials = 0
    batches = enumerate(trial_batches(roots, opts.recursive, report))
    tasks = ((i, (root, trials, None)) for i, (root, trials) in batches) if trials_store is None \
        else trials_store.tasks(batches)

    def done(result: TaskResult, n_trials: int) -> None:
        nonlocal done_trials
        if trials_store is not None:
            result = trials_store.assemble(result, workdir)
        results.append(result)
        done_trials += n_trials
        if on_progress:
            on_progress(done_trials, report.trials_found)
        if on_shards is not None and not whole_job(opts):
            on_shards(result.paths)

    try:
        run_tasks(tasks, opts, split_by, workdir, done)
        if trials_store is not None:
            trials_store.commit(workdir)
        shards = merge_results(results, report, split_by)
        _whole_job_steps(results, shards, report, opts, on_shards)
    except BaseException:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    if split_by is None and opts.val_fraction is None:
        report.rows_by_split = {}
    messages = [trials_store.summary()] if trials_store is not None else []
    return ExportResult(shards, report, workdir, row_schema(opts), opts, split_by, messages)
