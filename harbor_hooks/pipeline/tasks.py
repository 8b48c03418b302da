"""What a worker runs, on any engine: a task (a batch of trials) exported into shards of
its own; with --incremental, each trial stamped first and only the changed ones read, the
stored rows of the others copied into the task's shards in their places (store.py keeps
them)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from typing import Any, NamedTuple

import pyarrow as pa

from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.shards import SHARDS, ShardWriter, TaskResult, shard_schema
from harbor_hooks.pipeline.transform import TaskTrials, redact_report, task_rows
from harbor_hooks.readers.discover import fetch_trial, is_url, trial_stamp
from harbor_hooks.readers.meta import JobResults, TrialMeta
from harbor_hooks.report import ExportReport

SEGMENTS_OPEN = 256  # stream segments a worker keeps open (a file and its footer each)
SEGMENTS_MAPPED = 4  # and those it maps whole (a job of 4,000 trials has 4: no batch read)


class Known(NamedTuple):
    """What an --incremental task is given: where the store is, the record of each trial (or
    None), and the rows of each stored shard the records name."""

    store: str
    records: list[dict[str, Any] | None]
    shard_rows: dict[str, int]


def export_task(index: int, trial_dirs: list[str], root: str, opts: ExportOptions,
                split_by: str | None, workdir: str, known: Known | None = None) -> TaskResult:
    """Export a batch of trials into shards of their own (in a worker, on any engine); trials
    under an fsspec URL are read from a local copy, made in a scratch folder and removed.
    known (--incremental): a trial whose files and result are as its record says is not
    read: its stored rows are copied into the task's shards."""
    if is_url(root):
        return _export_remote(index, trial_dirs, root, opts, split_by, workdir)
    report = ExportReport()
    writer = ShardWriter(workdir, f"{index:06d}", shard_schema(opts), report)
    if known is not None:
        return _export_known(index, trial_dirs, root, opts, split_by, known, writer)
    for split, row, size in task_rows(trial_dirs, root, opts, report, split_by):
        writer.add(split, row, size)
    return TaskResult(index, writer.close(), writer.rows, report)


def _export_known(index: int, trial_dirs: list[str], root: str, opts: ExportOptions, split_by: str | None,
                  known: Known, writer: ShardWriter) -> TaskResult:
    """export_task under --incremental: each read trial has a report of its own (kept in the
    store: the report of a reused trial is the store's). When every trial is reused and their
    rows are a stored shard whole, that shard is the task's (nothing is copied)."""
    task = TaskTrials(opts, writer.report, split_by)
    records = stamp_trials(task, trial_dirs, known.records)
    whole = _whole_shards(records, known)
    if whole is None:
        traced = read_changed(task, trial_dirs, root, records, known.records, writer, StoredRows(known.store))
        paths = writer.close()
    if task.redactor is not None:  # the job-level result.json's skips (all the report has yet)
        before = Counter(task.redactor.counts)
        redact_report(task.redactor, writer.report, counted=False)
        writer.report.redactions.update(task.redactor.counts - before)
    if whole is not None:
        for record, entry in zip(records, known.records):
            record["rows"] = {split: place[1:3] for split, place in entry["rows"].items()}
        return TaskResult(index, whole, {s: known.shard_rows[os.path.relpath(p, known.store)]
                                         for s, p in whole.items()}, writer.report, records)
    finish_records(task, records, writer, traced)
    return TaskResult(index, paths, writer.rows, writer.report, records)


def stamp_trials(task: TaskTrials, trial_dirs: list[str], known: list[dict[str, Any] | None]
                 ) -> list[dict[str, Any]]:
    """Each trial's stamp, and whether it is as its record says (reused)."""
    records = []
    for trial_dir, entry in zip(trial_dirs, known):
        stamp = trial_stamp(trial_dir)
        reused = entry is not None and stamp is not None and unchanged(trial_dir, entry, stamp, task.jobs)
        records.append({"stamp": stamp, "reused": True} if reused else {"stamp": stamp})
    return records


def _whole_shards(records: list[dict[str, Any]], known: Known) -> dict[str, str] | None:
    """The stored shard of each split, when the task's trials are all reused and their rows
    are, in order, every row of one stored shard per split; else None."""
    if not all(r.get("reused") for r in records):
        return None
    runs: dict[str, list[Any]] = {}
    for entry in known.records:
        for split, (name, start, count, *_) in entry["rows"].items():
            run = runs.setdefault(split, [name, start, 0])
            if run[0] != name or run[1] + run[2] != start:
                return None
            run[2] += count
    if not all(start == 0 and known.shard_rows.get(name) == count and name.startswith(SHARDS + "/")
               for name, start, count in runs.values()):
        return None
    return {split: os.path.join(known.store, name) for split, (name, _, _) in runs.items()}


class StoredRows:
    """The stored rows a worker copies: shards mapped a few at a time; stream segments (a
    batch per trial, in the order trials ended) read batch by batch, the first few mapped,
    the others from open files (a task's trials are spread over every segment: mapping
    them all would keep the whole store in memory)."""

    def __init__(self, store: str):
        self.store = store
        self._tables: dict[str, tuple[pa.Table, float]] = {}  # name -> (rows, bytes per row)
        self._segments: dict[str, tuple[pa.ipc.RecordBatchFileReader, bool]] = {}  # (reader, mapped)

    def rows(self, name: str, start: int, count: int, *batch: int) -> tuple[pa.Table, int, int, int]:
        """The stored table that holds the rows, where they are in it, and about how many
        bytes they hold."""
        if batch:
            if name not in self._segments:
                if len(self._segments) >= SEGMENTS_OPEN:
                    self._segments.pop(next(iter(self._segments)))
                path = os.path.join(self.store, name)
                mapped = sum(m for _, m in self._segments.values()) < SEGMENTS_MAPPED
                self._segments[name] = (pa.ipc.open_file(pa.memory_map(path) if mapped else pa.OSFile(path)),
                                        mapped)
            rows = self._segments[name][0].get_batch(batch[0])
            if rows.num_rows != count:
                raise IndexError(f"{name}: batch {batch[0]} holds {rows.num_rows} rows, not {count}")
            return pa.Table.from_batches([rows]), 0, count, rows.get_total_buffer_size()
        if name not in self._tables:
            if len(self._tables) >= 8:
                self._tables.pop(next(iter(self._tables)))
            # mapped, not read: a table's buffers keep their map open
            table = pa.ipc.open_stream(pa.memory_map(os.path.join(self.store, name))).read_all()
            self._tables[name] = (table, table.nbytes / max(1, table.num_rows))
        table, per_row = self._tables[name]
        if start < 0 or start + count > table.num_rows:
            raise IndexError(f"{name} holds {table.num_rows} rows, not {start}+{count}")
        return table, start, count, int(per_row * count)


def read_changed(task: TaskTrials, trial_dirs: list[str], root: str, records: list[dict[str, Any]],
                 known: list[dict[str, Any] | None], writer: ShardWriter, stored: StoredRows | None = None,
                 first: int = 0) -> dict[int, Counter]:
    """Into writer, in order (trial first + i): the stored rows of each reused trial, and the
    rows of each other one, read with a report of its own (a reused trial whose rows cannot
    be read back is read again). Returns the redactions of each read trial's trace."""
    traced: dict[int, Counter] = {}
    for i, (trial_dir, record, entry) in enumerate(zip(trial_dirs, records, known), first):
        if record.get("reused"):
            try:
                tables = {split: stored.rows(*place) for split, place in entry["rows"].items()}
            except (OSError, pa.ArrowException, AttributeError, IndexError):
                del record["reused"]
            else:
                for split, place in tables.items():
                    writer.add_table(split, *place, i)
                continue
        writer.trial_reports[i] = trial_report = ExportReport()
        before = Counter(task.redactor.counts) if task.redactor is not None else Counter()
        meta, kept = task.rows(trial_dir, root, trial_report)
        for split, row, size in kept:
            writer.add(split, row, size, i)
        if task.redactor is not None:
            traced[i] = task.redactor.counts - before
        record.update(trial_record(record["stamp"], trial_dir, meta))
    return traced


def finish_records(task: TaskTrials, records: list[dict[str, Any]], writer: ShardWriter,
                   traced: dict[int, Counter], first: int = 0) -> None:
    """Once the rows are written: each trial's record gets its rows' places, and each read
    trial's its report (redacted, its redactions counted), which goes into the writer's."""
    for i, record in enumerate(records, first):
        record["rows"] = writer.placed.pop(i, {})
        trial_report = writer.trial_reports.pop(i, None)
        if trial_report is None:  # reused: its report is the store's (store.assemble)
            continue
        if task.redactor is not None:
            before = Counter(task.redactor.counts)
            redact_report(task.redactor, trial_report, counted=False)
            trial_report.redactions.update(traced[i] + (task.redactor.counts - before))
        record["report"] = trial_report.state()
        writer.report.merge(trial_report)


def _hashed(value: str | None) -> str:
    return hashlib.blake2b(repr(value).encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def trial_record(stamp: str | None, trial_dir: str, meta: TrialMeta | None) -> dict[str, Any]:
    """What --incremental keeps of a trial to know it again: its files' stamp, and its result
    (from the job's result.json or its own: the job's may change after the trial ends),
    hashed: the store holds no text of the trial's."""
    record: dict[str, Any] = {"stamp": stamp}
    if meta is not None:
        record["result"], record["own"] = _hashed(meta.result), _hashed(meta.own_result)
        if meta.trial_name != os.path.basename(trial_dir):  # the job's result is under that name
            record["renamed"] = True
    return record


def unchanged(trial_dir: str, entry: dict[str, Any], stamp: str, jobs: JobResults) -> bool:
    """Whether a trial is as its record says: the same files, and the same result. The job's
    result is looked up by the folder's name (Harbor's trial name): a trial named otherwise
    in its result.json is read each time (the store keeps no name of a trial's)."""
    if entry.get("stamp") != stamp or entry.get("renamed"):
        return False
    if "result" not in entry:  # its metadata could not be read: its files alone decide
        return True
    job = (jobs.for_trial(trial_dir) or {}).get(os.path.basename(trial_dir))
    return (entry["own"] if job is None else _hashed(job)) == entry["result"]


def _export_remote(index: int, trials: list[str], root: str, opts: ExportOptions,
                   split_by: str | None, workdir: str) -> TaskResult:
    report = ExportReport()
    with tempfile.TemporaryDirectory(prefix="harbor-hooks-fetch-") as scratch:
        data = os.path.join(scratch, "trials")
        os.makedirs(data)
        local = []
        for trial in trials:
            try:
                local.append(fetch_trial(trial, root, data))
            except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own kinds
                report.skip("trial", trial, f"cannot be read ({type(exc).__name__}: {exc})")
        result = export_task(index, local, data, opts, split_by, workdir)
    result.report.merge(report)
    return result
