"""Arrow stream shards: what a task writes, and what the parent keeps of an export.

A task (a batch of trials) writes one shard per split; the parent keeps shard paths,
row counts and reports, never rows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

from harbor_hooks.formats import row_schema
from harbor_hooks.formats.arrow import storage_schema
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.transform import DEDUPE_KEY, TaskTrials, redact_report, task_rows
from harbor_hooks.readers.discover import fetch_trial, is_url, trial_stamp
from harbor_hooks.readers.meta import JobResults, TrialMeta
from harbor_hooks.report import ExportReport

ROWS_PER_BATCH = 1000
BYTES_PER_BATCH = 32 << 20


def fixed_splits(split_by: str | None, validation: bool = False) -> list[str] | None:
    """The splits of every export split so, rows or none (None: the splits are the trace
    sources found); validation: with a validation split (--val-fraction)."""
    splits = {None: ["train"], "outcome": ["success", "failure"]}.get(split_by)
    return splits + ["validation"] if splits is not None and validation else splits


def shard_schema(opts: ExportOptions) -> pa.Schema:
    schema = row_schema(opts)
    return schema.append(pa.field(DEDUPE_KEY, pa.binary(16))) if opts.dedupe else schema


class ShardWriter:
    """Arrow stream files, one per split, written in record batches of bounded size."""

    def __init__(self, directory: str, stem: str, schema: pa.Schema, report: ExportReport):
        self.directory, self.stem, self.schema, self.report = directory, stem, schema, report
        self.storage = storage_schema(schema)  # rows are converted to it, then cast to schema
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._owners: dict[str, list[int]] = {}  # the trial of each pending row, when placed
        self._pending_bytes: dict[str, int] = {}
        self._writers: dict[str, tuple[Any, Any, str]] = {}
        self.rows: dict[str, int] = {}
        # --incremental: where each trial's rows are (trial -> split -> [start, count]), and
        # the report of each trial, which counts the rows that cannot be stored
        self.placed: dict[int, dict[str, list[int]]] = {}
        self.trial_reports: dict[int, ExportReport] = {}

    def add(self, split: str, row: dict[str, Any], size: int, trial: int | None = None) -> None:
        rows = self._pending.setdefault(split, [])
        rows.append(row)
        if trial is not None:
            self._owners.setdefault(split, []).append(trial)
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
        owners = self._owners.pop(split, [])
        try:
            batch = self._batch(rows)
        except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
            kept = self._convertible(rows, owners)
            rows, owners = [rows[i] for i in kept], [owners[i] for i in kept if owners]
            batch = self._batch(rows)
        self._writers[split][1].write_batch(batch)
        start = self.rows.get(split, 0)
        for offset, trial in enumerate(owners):
            self.placed.setdefault(trial, {}).setdefault(split, [start + offset, 0])[1] += 1
        self.rows[split] = start + len(rows)
        self._pending[split] = []
        self._pending_bytes[split] = 0

    def _batch(self, rows: list[dict[str, Any]]) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pylist(rows, schema=self.storage)
        return batch if self.storage is self.schema else batch.cast(self.schema)

    def _convertible(self, rows: list[dict[str, Any]], owners: list[int]) -> list[int]:
        """The places of the rows Arrow can hold, tried one by one; each other one skipped and
        counted in its trial's report (a value no reader foresaw must cost its row, not the
        batch of 64 trials)."""
        kept = []
        for i, row in enumerate(rows):
            try:
                self._batch([row])
            except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError) as exc:
                report = self.trial_reports.get(owners[i], self.report) if owners else self.report
                report.skip("row", str(row.get("source_path")),
                            f"{row.get('episode')} ({row.get('trace_source')}) cannot be stored: "
                            f"{type(exc).__name__}: {exc}")
                continue
            kept.append(i)
        return kept

    def path_of(self, split: str) -> str:
        return self._writers[split][2]

    def flush(self) -> None:
        for split in list(self._pending):
            self._flush(split)

    def close(self) -> dict[str, str]:
        self.flush()
        paths = {}
        for split, (sink, writer, path) in self._writers.items():
            writer.close()
            sink.close()
            paths[split] = path
        return paths


class TaskResult(NamedTuple):
    index: int
    paths: dict[str, str]  # shard path by split
    rows: dict[str, int]  # rows by split
    report: ExportReport
    trials: list[dict[str, Any]] | None = None  # --incremental: each trial's record (see store.py)


def export_task(index: int, trial_dirs: list[str], root: str, opts: ExportOptions,
                split_by: str | None, workdir: str, known: list[dict[str, Any] | None] | None = None
                ) -> TaskResult:
    """Export a batch of trials into shards of their own (in a worker, on any engine); trials
    under an fsspec URL are read from a local copy, made in a scratch folder and removed.
    known (--incremental): the stored record of each trial, or None; a trial whose files
    and result are as recorded is not read (its rows are the stored ones)."""
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
                  known: list[dict[str, Any] | None], writer: ShardWriter) -> TaskResult:
    """export_task under --incremental: each trial stamped, and read only when it changed,
    with a report of its own (kept in the store: the report of a reused trial is its own)."""
    task = TaskTrials(opts, writer.report, split_by)
    records, traced = read_changed(task, trial_dirs, root, known, writer)
    paths = writer.close()
    if task.redactor is not None:  # the job-level result.json's skips, redacted once per task
        before = Counter(task.redactor.counts)
        redact_report(task.redactor, writer.report, counted=False)
        writer.report.redactions.update(task.redactor.counts - before)
    finish_records(task, records, writer, traced)
    return TaskResult(index, paths, writer.rows, writer.report, records)


def read_changed(task: TaskTrials, trial_dirs: list[str], root: str, known: list[dict[str, Any] | None],
                 writer: ShardWriter, first: int = 0) -> tuple[list[dict[str, Any]], dict[int, Counter]]:
    """Stamp each trial; read those not as known into writer (trial first + i), each with a
    report of its own. Returns the trials' records and the redactions of each one's trace."""
    records: list[dict[str, Any]] = []
    traced: dict[int, Counter] = {}
    for i, (trial_dir, entry) in enumerate(zip(trial_dirs, known), first):
        stamp = trial_stamp(trial_dir)
        if entry is not None and stamp is not None and unchanged(trial_dir, entry, stamp, task.jobs):
            records.append({"stamp": stamp, "reused": True})
            continue
        writer.trial_reports[i] = trial_report = ExportReport()
        before = Counter(task.redactor.counts) if task.redactor is not None else Counter()
        meta, kept = task.rows(trial_dir, root, trial_report)
        for split, row, size in kept:
            writer.add(split, row, size, i)
        if task.redactor is not None:
            traced[i] = task.redactor.counts - before
        records.append(trial_record(stamp, trial_dir, meta))
    return records, traced


def finish_records(task: TaskTrials, records: list[dict[str, Any]], writer: ShardWriter,
                   traced: dict[int, Counter], first: int = 0) -> None:
    """Once the rows are written: each read trial's record gets its rows' places and its
    report (redacted, its redactions counted), which goes into the writer's."""
    for i, record in enumerate(records, first):
        trial_report = writer.trial_reports.pop(i, None)
        if trial_report is None:  # reused: its report is the store's (store.assemble)
            continue
        if task.redactor is not None:
            before = Counter(task.redactor.counts)
            redact_report(task.redactor, trial_report, counted=False)
            trial_report.redactions.update(traced[i] + (task.redactor.counts - before))
        record["rows"] = writer.placed.pop(i, {})
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
        if meta.trial_name != os.path.basename(trial_dir):
            record["name"] = meta.trial_name
    return record


def unchanged(trial_dir: str, entry: dict[str, Any], stamp: str, jobs: JobResults) -> bool:
    """Whether a trial is as its record says: the same files, and the same result."""
    if entry.get("stamp") != stamp:
        return False
    if "result" not in entry:  # not read (skipped): its files alone decide
        return True
    job = (jobs.for_trial(trial_dir) or {}).get(entry.get("name") or os.path.basename(trial_dir))
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


@dataclass
class ExportResult:
    """Shards per split (in row order), the report, and the folder that holds the shards."""

    shards: dict[str, list[str]]
    report: ExportReport
    workdir: str
    schema: pa.Schema
    options: ExportOptions
    split_by: str | None = None
    messages: list[str] = field(default_factory=list)  # what the user is told beside the report

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def merge_results(results: list[TaskResult], report: ExportReport, split_by: str | None) -> dict[str, list[str]]:
    """The shards of every task by split, in task order; each task's report merged into report.
    Every task reads its job's result.json: what that file caused is reported once. Skips
    and notes are listed by path, so that their order does not depend on how the trials
    were batched (or reused, with --incremental)."""
    shards: dict[str, list[str]] = {split: [] for split in fixed_splits(split_by) or ()}
    skips_merged: set[tuple[str, str, str]] = set()
    notes_merged: set[str] = set()
    for _, paths, rows, task_report, _ in results:  # in task order
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
    report.skips.sort(key=lambda skip: skip.path)
    report.notes.sort()
    return shards


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


