"""The export pipeline: trial dirs -> rows (in worker processes) -> Arrow shards -> outputs.

A trial is read once, in a worker, and leaves it as rows written to an Arrow
stream shard; the parent only keeps shard paths and the report, so memory is
bounded by a worker's batch, not by the job.
"""

from __future__ import annotations

import fnmatch
import gc
import hashlib
import itertools
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from harbor_hooks.discover import iter_trial_dirs
from harbor_hooks.imports import absent
from harbor_hooks.jsonio import ReadLimits, TrialFiles
from harbor_hooks.readers import TrialTrace, Turn
from harbor_hooks.readers.atif import has_trajectory, read_atif_trial
from harbor_hooks.readers.episodes import episode_dirs, read_episode_trial
from harbor_hooks.redact import Redactor
from harbor_hooks.render import RenderOptions, render_rows, selected_episodes
from harbor_hooks.report import ExportReport, TraceReadError
from harbor_hooks.schema import row_schema
from harbor_hooks.trial import JobResults, TrialMeta, load_trial_meta

TRIALS_PER_TASK = 64  # fixed, so shard layout (and output bytes) do not depend on --workers
TASKS_AHEAD = 4  # per worker: submitted before the one awaited is done
PARENT_CHECK_SECONDS = 0.5  # how soon an orphaned worker ends
ROWS_PER_BATCH = 1000
BYTES_PER_BATCH = 32 << 20


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; plain and picklable, handed to every worker."""

    episodes: str = "all"  # all | last
    success_filter: str = "all"  # success | failure | all
    sharegpt: bool = False
    subagents: bool = True
    instruction: bool = False
    verifier: bool = False
    embed_tools: bool = True
    redact: bool = True
    redact_patterns: tuple[str, ...] = ()
    split_by: str | None = None  # None -> "train"; "outcome" -> success/failure; "source"
    max_file_bytes: int = ReadLimits.max_file_bytes
    max_message_bytes: int = ReadLimits.max_message_bytes
    max_rows_per_trial: int = 1000  # with episodes=all: rows grow quadratically with turns
    schema: str = "harbor"  # harbor | messages | llamafactory
    rows: str = "episode"  # episode | trajectory
    reasoning: str = "field"  # field | inline
    # filters beyond success/failure; each drop is counted under its option's name
    min_reward: float | None = None
    max_turns: int | None = None
    max_chars: int | None = None
    agents: tuple[str, ...] = ()  # glob patterns
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    exclude_exceptions: bool = False
    dedupe: bool = False
    images: str = "placeholder"  # placeholder | keep (an `images` column of datasets.Image)

    def fixed_splits(self) -> list[str] | None:
        """The splits of every export with these options, rows or none (None: the splits
        are the trace sources found)."""
        return {None: ["train"], "outcome": ["success", "failure"]}.get(self.split_by)

    def render_options(self) -> RenderOptions:
        return RenderOptions(self.episodes, self.sharegpt, self.instruction, self.verifier,
                             self.embed_tools, self.schema, self.rows, self.reasoning)

    def arrow_schema(self) -> pa.Schema:
        return row_schema(self.schema, self.sharegpt, self.instruction, self.verifier,
                          images=self.images == "keep")


@dataclass
class ExportResult:
    """Shards per split (in row order), the report, and the folder that holds the shards."""

    shards: dict[str, list[str]]
    report: ExportReport
    workdir: str
    schema: pa.Schema
    options: ExportOptions

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _verifier_output(trial_dir: str, files: TrialFiles) -> str | None:
    """verifier/test-stdout.txt then test-stderr.txt, concatenated (Harbor's column)."""
    parts = []
    for name in ("test-stdout.txt", "test-stderr.txt"):
        path = os.path.join(trial_dir, "verifier", name)
        if os.path.lexists(path):
            try:
                parts.append(files.text(path))
            except TraceReadError as exc:
                files.report.skip("file", exc.path, exc.reason)
    return "".join(parts) if parts else None


def read_trial(trial_dir: str, jobs: JobResults, opts: ExportOptions,
               report: ExportReport) -> tuple[TrialMeta, TrialTrace, TrialFiles] | None:
    """Metadata and trace of one trial, or None (skipped or filtered, and reported)."""
    files = TrialFiles(trial_dir, report, ReadLimits(opts.max_file_bytes, opts.max_message_bytes))
    try:
        meta = load_trial_meta(trial_dir, jobs, files)
    except TraceReadError as exc:
        report.skip("trial", exc.path, exc.reason)
        return None
    reason = trial_filter(meta, opts)
    if reason is not None:
        report.trials_filtered += 1
        report.filtered[reason] += 1
        return None
    agent_dir = os.path.join(trial_dir, "agent")
    try:
        agent_entries = files.entries(agent_dir)  # listed once, for both readers
        if has_trajectory(agent_entries):
            trace = read_atif_trial(trial_dir, meta, files, subagents=opts.subagents)
        elif episode_dirs(agent_entries):
            trace = read_episode_trial(trial_dir, meta, files)
        else:
            report.skip("trial", trial_dir, f"agent {meta.agent!r} wrote neither "
                        "agent/trajectory.json nor agent/episode-N/ folders")
            return None
    except TraceReadError as exc:
        report.skip("trial", exc.path, exc.reason)
        return None
    return meta, trace, files


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)


def trial_filter(meta: TrialMeta, opts: ExportOptions) -> str | None:
    """The option that excludes this trial, or None to keep it."""
    if opts.success_filter in ("success", "failure") and meta.success != (opts.success_filter == "success"):
        return "--filter"
    if opts.min_reward is not None and (meta.reward is None or meta.reward < opts.min_reward):
        return "--min-reward"
    if opts.exclude_exceptions and meta.exception is not None:
        return "--exclude-exceptions"
    if not _matches(meta.agent, opts.agents):
        return "--agent"
    if not _matches(meta.task, opts.tasks):
        return "--task"
    return None


def row_filter(row: dict[str, Any], size: int, opts: ExportOptions) -> str | None:
    if opts.max_turns is not None and row["n_turns"] > opts.max_turns:
        return "--max-turns"
    if opts.max_chars is not None and size > opts.max_chars:
        return "--max-chars"
    if not _matches(row["model"], opts.models):
        return "--model"
    return None


def trial_rows(trial_dir: str, root: str, jobs: JobResults, opts: ExportOptions,
               report: ExportReport, redactor: Redactor | None) -> list[dict[str, Any]]:
    found = read_trial(trial_dir, jobs, opts, report)
    if found is None:
        return []
    meta, trace, files = found
    verifier = _verifier_output(trial_dir, files) if opts.verifier else None
    turns = trace.unique_turns()
    if redactor is not None:
        redactor.trace(trace, turns)
        if verifier:
            verifier = redactor.text(verifier)
    report.images += sum(len(t.images) for t in turns)
    images = load_images(trial_dir, turns, files) if opts.images == "keep" else None
    source_path = _relative(trial_dir, root) if root else trial_dir
    render_opts = opts.render_options()
    selected = selected_episodes(trace, render_opts)
    if len(selected) > opts.max_rows_per_trial:  # cut before rendering: rows grow quadratically
        report.skip("row", trial_dir, f"{len(selected) - opts.max_rows_per_trial} episodes beyond "
                    f"--max-rows-per-trial ({opts.max_rows_per_trial})")
        selected = selected[:opts.max_rows_per_trial]
    rows = render_rows(selected, trace, meta, render_opts, source_path, verifier, images)
    if not rows:
        report.skip("trial", trial_dir, "no complete episode to export")
        return []
    report.trials_exported += 1
    return rows


def _relative(path: str, root: str) -> str:
    """os.path.relpath(path, root) without its two abspath calls, for the usual case of a
    path found under root."""
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix) and os.pardir not in path[len(prefix):].split(os.sep):
        return os.path.normpath(path[len(prefix):])
    return os.path.relpath(path, root)


def load_images(trial_dir: str, turns: list[Turn], files: TrialFiles) -> dict[str, bytes]:
    """--images keep: the bytes of every image the turns refer to (paths relative to agent/)."""
    found = {}
    for path in dict.fromkeys(p for t in turns for p in t.images):
        full = os.path.join(trial_dir, "agent", path)
        try:
            found[path] = files.bytes(full)
        except TraceReadError as exc:
            files.report.skip("file", exc.path, f"image kept as a text placeholder: {exc.reason}")
    return found


def _split_of(row: dict[str, Any], split_by: str | None) -> str:
    if split_by == "outcome":
        return "success" if row["success"] else "failure"
    if split_by == "source":
        return row["trace_source"]
    return "train"


class ShardWriter:
    """Arrow stream files, one per split, written in record batches of bounded size."""

    def __init__(self, directory: str, stem: str, schema: pa.Schema):
        self.directory, self.stem, self.schema = directory, stem, schema
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._pending_bytes: dict[str, int] = {}
        self._writers: dict[str, tuple[Any, Any, str]] = {}
        self.rows: dict[str, int] = {}

    def add(self, split: str, row: dict[str, Any], size: int) -> None:
        rows = self._pending.setdefault(split, [])
        rows.append(row)
        self._pending_bytes[split] = self._pending_bytes.get(split, 0) + size
        if len(rows) >= ROWS_PER_BATCH or self._pending_bytes[split] >= BYTES_PER_BATCH:
            self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self._pending.get(split)
        if not rows:
            return
        if split not in self._writers:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split)
            path = os.path.join(self.directory, f"{safe}-{self.stem}.arrow")
            sink = pa.OSFile(path, "wb")
            self._writers[split] = (sink, pa.ipc.new_stream(sink, self.schema), path)
        batch = pa.RecordBatch.from_pylist(rows, schema=self.schema)
        self._writers[split][1].write_batch(batch)
        self.rows[split] = self.rows.get(split, 0) + len(rows)
        self._pending[split] = []
        self._pending_bytes[split] = 0

    def close(self) -> dict[str, str]:
        for split in list(self._pending):
            self._flush(split)
        paths = {}
        for split, (sink, writer, path) in self._writers.items():
            writer.close()
            sink.close()
            paths[split] = path
        return paths


def _row_size(row: dict[str, Any]) -> int:
    messages = row["messages"] if "messages" in row else row["conversations"]
    return sum(len(m.get("content") or m.get("value") or "") for m in messages)


DEDUPE_KEY = "_dedupe_key"


def shard_schema(opts: ExportOptions) -> pa.Schema:
    schema = opts.arrow_schema()
    return schema.append(pa.field(DEDUPE_KEY, pa.binary(16))) if opts.dedupe else schema


def conversation_key(row: dict[str, Any]) -> bytes:
    messages = row["messages"] if "messages" in row else row["conversations"]
    return hashlib.blake2b(orjson.dumps(messages), digest_size=16).digest()


def drop_duplicates(shards: dict[str, list[str]], report: ExportReport) -> None:
    """--dedupe: keep the first row of each conversation, in export order, across all splits;
    rewrite the shards without the duplicates and without the key column."""
    seen: set[bytes] = set()
    for split, paths in shards.items():
        for i, path in enumerate(paths):
            kept_path = path + ".dedupe"
            with pa.memory_map(path) as source, pa.OSFile(kept_path, "wb") as sink:
                reader = pa.ipc.open_stream(source)
                schema = reader.schema.remove(reader.schema.get_field_index(DEDUPE_KEY))
                with pa.ipc.new_stream(sink, schema) as writer:
                    for batch in reader:
                        keep = bytearray(batch.num_rows)
                        for row, key in enumerate(batch.column(DEDUPE_KEY).to_pylist()):
                            if key not in seen:
                                keep[row] = 1
                                seen.add(key)
                        dropped = len(keep) - sum(keep)
                        if dropped:
                            report.filtered["--dedupe"] += dropped
                            report.rows -= dropped
                            report.rows_by_split[split] -= dropped
                        # the mask made from its bytes: pa.array(a list) would import pandas
                        # (0.3 s) to look for pandas objects in it
                        mask = pa.Array.from_buffers(pa.uint8(), len(keep), [None, pa.py_buffer(keep)])
                        kept = batch.filter(mask.cast(pa.bool_())).drop_columns([DEDUPE_KEY])
                        writer.write_batch(kept)
            os.replace(kept_path, path)


def task_rows(trial_dirs: list[str], root: str, opts: ExportOptions,
              report: ExportReport) -> Iterator[tuple[str, dict[str, Any], int]]:
    """(split, row, size) of every row a batch of trials exports, filters applied."""
    jobs = JobResults(report)
    redactor = Redactor(opts.redact_patterns) if opts.redact else None
    for trial_dir in trial_dirs:
        try:
            for row in trial_rows(trial_dir, root, jobs, opts, report, redactor):
                size = _row_size(row)
                reason = row_filter(row, size, opts)
                if reason is not None:
                    report.filtered[reason] += 1
                    continue
                if opts.dedupe:
                    row[DEDUPE_KEY] = conversation_key(row)
                yield _split_of(row, opts.split_by), row, size
        except RecursionError:
            report.skip("trial", trial_dir, "nested too deeply to read")
    if redactor is not None:
        # reasons quote data (a reference, a source name); one trigger scan for all of them
        rules = redactor.rules_for([t for skip in report.skips for t in (skip.path, skip.reason)]
                                   + report.notes)
        if rules:
            for skip in report.skips:
                skip.path, skip.reason = redactor.text(skip.path, rules), redactor.text(skip.reason, rules)
            report.notes = [redactor.text(note, rules) for note in report.notes]
        report.redactions.update(redactor.counts)


def export_task(index: int, trial_dirs: list[str], root: str, opts: ExportOptions,
                workdir: str) -> tuple[int, dict[str, str], dict[str, int], ExportReport]:
    """Worker entry: export a batch of trials into shards of their own."""
    report = ExportReport()
    writer = ShardWriter(workdir, f"{index:06d}", shard_schema(opts))
    for split, row, size in task_rows(trial_dirs, root, opts, report):
        writer.add(split, row, size)
    return index, writer.close(), writer.rows, report


def _worker_init(parent: int | None) -> None:
    """A worker ends with the process that made it (parent: its pid when known), and
    pyarrow's first conversion is made without pandas (see _without_pandas)."""
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


def trial_batches(roots: list[str], recursive: bool,
                  report: ExportReport) -> Iterator[tuple[str, list[str]]]:
    """(root, trial dirs) batches of TRIALS_PER_TASK trials, yielded as discovery finds them."""
    for root in roots:
        if not os.path.isdir(root):
            report.skip("trial", root, "path does not exist or is not a directory")
            continue
        batch: list[str] = []
        found = report.trials_found
        for trial in iter_trial_dirs(root, recursive=recursive, report=report):
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


def run_export(
    roots: str | os.PathLike | list[str | os.PathLike],
    opts: ExportOptions,
    recursive: bool = True,
    workers: int | None = None,
    workdir: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_shards: Callable[[dict[str, str]], None] | None = None,
) -> ExportResult:
    """Export every trial under one or more roots into Arrow shards.

    on_shards, when given, is called with each task's shards (path by split) in export
    order, as soon as it and the tasks before it are done: outputs are written while the
    workers go on (with --dedupe, once all are done: duplicates are dropped across tasks)."""
    roots = [os.fspath(r) for r in (roots if isinstance(roots, list) else [roots])]
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="harbor-hooks-export-")
    os.makedirs(workdir, exist_ok=True)
    try:
        return _run_export(roots, opts, recursive, workers, workdir, on_progress, on_shards)
    except BaseException:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _run_export(roots: list[str], opts: ExportOptions, recursive: bool, workers: int | None,
                workdir: str, on_progress: Callable[[int, int], None] | None,
                on_shards: Callable[[dict[str, str]], None] | None) -> ExportResult:
    report = ExportReport()
    workers = default_workers() if workers is None else max(1, workers)
    batches = enumerate(trial_batches(roots, recursive, report))
    first = list(itertools.islice(batches, workers))  # sizes the pool: no idle workers forked
    results: list[tuple[int, dict[str, str], dict[str, int], ExportReport]] = []
    done_trials = 0

    def done(result: tuple[int, dict[str, str], dict[str, int], ExportReport], n_trials: int) -> None:
        nonlocal done_trials
        results.append(result)
        done_trials += n_trials
        if on_progress:
            on_progress(done_trials, report.trials_found)
        if on_shards is not None and not opts.dedupe:
            on_shards(result[1])

    context = _pool_context()
    # with fork, even one worker runs in a child: in this process pyarrow would import pandas
    # (see _without_pandas), which costs more than a fork; a fresh (forkserver) one costs more
    if not first or (context.get_start_method() != "fork" and (workers == 1 or len(first) == 1)):
        for i, (root, trials) in itertools.chain(first, batches):
            done(export_task(i, trials, root, opts, workdir), len(trials))
    else:
        if context.get_start_method() == "fork":
            # made here once, for the forked workers to share instead of each making them:
            # the index of the first trials' job-level result.json (it lists every trial),
            # and the compiled redaction patterns
            _, (_, trials) = first[0]
            JobResults().for_trial(trials[0])
            if opts.redact:
                Redactor(opts.redact_patterns)
        with _frozen_heap(context), ProcessPoolExecutor(
                max_workers=len(first), mp_context=context, initializer=_worker_init,
                initargs=(os.getpid() if context.get_start_method() == "fork" else None,)) as pool:
            # a few tasks ahead of the one awaited, the next submitted as one is done (and
            # discovered then): the trials waiting for a worker do not grow with the job
            tasks = itertools.chain(first, batches)
            in_flight: deque[tuple[Future, int]] = deque()

            def submit(count: int) -> None:
                for i, (root, trials) in itertools.islice(tasks, count):
                    in_flight.append((pool.submit(export_task, i, trials, root, opts, workdir),
                                      len(trials)))

            submit(TASKS_AHEAD * len(first))
            while in_flight:
                future, n_trials = in_flight.popleft()
                result = future.result()
                submit(1)
                done(result, n_trials)

    shards: dict[str, list[str]] = {split: [] for split in opts.fixed_splits() or ()}
    skips_merged: set[tuple[str, str, str]] = set()
    notes_merged: set[str] = set()
    for _, paths, rows, task_report in results:  # in task order
        # every task reads its job's result.json: what that file caused is reported once
        keys = [(s.kind, s.path, s.reason) for s in task_report.skips]
        task_report.skips = [s for s, key in zip(task_report.skips, keys) if key not in skips_merged]
        task_report.notes = [n for n in task_report.notes if n not in notes_merged]
        skips_merged.update(keys)
        notes_merged.update(task_report.notes)
        report.merge(task_report)
        for split, path in paths.items():
            shards.setdefault(split, []).append(path)
            report.rows_by_split[split] = report.rows_by_split.get(split, 0) + rows[split]
            report.rows += rows[split]
    if opts.dedupe:
        drop_duplicates(shards, report)  # in place: each task's shards keep their paths
        if on_shards is not None:
            for _, paths, _, _ in results:
                on_shards(paths)
    if opts.split_by is None:
        report.rows_by_split = {}
    return ExportResult(shards, report, workdir, opts.arrow_schema(), opts)
