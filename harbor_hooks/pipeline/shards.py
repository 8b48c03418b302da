"""Arrow stream shards: what a task writes, and what the parent keeps of an export.

A task (a batch of trials) writes one shard per split; the parent keeps shard paths,
row counts and reports, never rows.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

from harbor_hooks.formats import row_schema
from harbor_hooks.formats.arrow import storage_schema
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.transform import DEDUPE_KEY
from harbor_hooks.report import ExportReport

WORK_PREFIX = ".harbor-hooks-export-"  # an export's work folder (in the store, with --incremental)
SHARDS = "shards"  # the folder of a store's shards
ROWS_PER_BATCH = 1000
JOINED_PIECES = 4  # more pieces of stored rows than this are joined into one batch
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

    def __init__(self, directory: str, stem: str, schema: pa.Schema, report: ExportReport,
                 random_access: bool = False):
        self.directory, self.stem, self.schema, self.report = directory, stem, schema, report
        self.random_access = random_access  # Arrow IPC files (a batch read by its number)
        self.batches: dict[str, int] = {}  # batches written, by split
        self.storage = storage_schema(schema)  # rows are converted to it, then cast to schema
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._owners: dict[str, list[int]] = {}  # the trial of each pending row, when placed
        self._tables: dict[str, list[list[Any]]] = {}  # stored rows not written: [table, start, count]
        self._pending_bytes: dict[str, int] = {}
        self._writers: dict[str, tuple[Any, Any, str]] = {}
        self.rows: dict[str, int] = {}
        # --incremental: where each trial's rows are (trial -> split -> [start, count]), and
        # the report of each trial, which counts the rows that cannot be stored
        self.placed: dict[int, dict[str, list[int]]] = {}
        self.trial_reports: dict[int, ExportReport] = {}

    def add(self, split: str, row: dict[str, Any], size: int, trial: int | None = None) -> None:
        if split in self._tables:  # stored rows added before it
            self._flush_tables(split)
        rows = self._pending.setdefault(split, [])
        rows.append(row)
        if trial is not None:
            self._owners.setdefault(split, []).append(trial)
        self._pending_bytes[split] = self._pending_bytes.get(split, 0) + size
        if len(rows) >= ROWS_PER_BATCH or self._pending_bytes[split] >= BYTES_PER_BATCH:
            self._flush_rows(split)

    def add_table(self, split: str, table: pa.Table, start: int, count: int, size: int, trial: int) -> None:
        """Stored rows of a trial (--incremental): count rows of table from start (size: their
        bytes, about), after the rows added before them. Neighbouring rows of one stored
        table are joined; pieces are written in batches of bounded size."""
        self._flush_rows(split)
        pieces = self._tables.setdefault(split, [])
        pending = sum(piece[2] for piece in pieces)
        self.placed.setdefault(trial, {})[split] = [self.rows.get(split, 0) + pending, count]
        if pieces and pieces[-1][0] is table and pieces[-1][1] + pieces[-1][2] == start:
            pieces[-1][2] += count
        else:
            pieces.append([table, start, count])
        self._pending_bytes[split] = self._pending_bytes.get(split, 0) + size
        if pending + count >= ROWS_PER_BATCH or self._pending_bytes[split] >= BYTES_PER_BATCH:
            self._flush_tables(split)

    def _sink(self, split: str) -> Any:
        if split not in self._writers:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split)
            path = os.path.join(self.directory, f"{safe}-{self.stem}.arrow")
            sink = pa.OSFile(path, "wb")
            new = pa.ipc.new_file if self.random_access else pa.ipc.new_stream
            self._writers[split] = (sink, new(sink, self.schema), path)
        return self._writers[split][1]

    def _flush_tables(self, split: str) -> None:
        pieces = [table.slice(start, count) for table, start, count in self._tables.pop(split, [])]
        self._pending_bytes[split] = 0
        if len(pieces) > JOINED_PIECES:  # many small ones: one batch (a copy) reads faster later
            pieces = [pa.concat_tables(pieces).combine_chunks()]
        for piece in pieces:  # a few large ones: written as they are (no copy but the file's)
            self._sink(split).write_table(piece)
            self.rows[split] = self.rows.get(split, 0) + piece.num_rows

    def _flush(self, split: str) -> None:
        self._flush_tables(split)
        self._flush_rows(split)

    def _flush_rows(self, split: str) -> None:
        rows = self._pending.get(split)
        if not rows:
            return
        owners = self._owners.pop(split, [])
        try:
            batch = self._batch(rows)
        except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
            kept = self._convertible(rows, owners)
            rows, owners = [rows[i] for i in kept], [owners[i] for i in kept if owners]
            batch = self._batch(rows)
        self._sink(split).write_batch(batch)
        self.batches[split] = self.batches.get(split, 0) + 1
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
        for split in list({**self._pending, **self._tables}):
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


