"""What to train on, beyond filters: decontamination against benchmark prompts (in the
workers, per trial), and draws across the job (in the parent, once every task is done):
--max-per-task trials of each task, and a --val-fraction of the tasks as a validation split.

Draws are deterministic: each trial (and each task) is ranked by a hash of --seed and its
name, so the same job and seed give the same rows whatever the workers or their order.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from harbor_hooks.errors import SettingsError
from harbor_hooks.options import ExportOptions
from harbor_hooks.report import ExportReport

WORD = re.compile(r"\w+")
VALIDATION = "validation"


def ngrams(text: str, n: int) -> set[int]:
    """The hashes of text's n-word sequences (words lowercased, punctuation ignored)."""
    words = WORD.findall(text.lower())
    return {hash(" ".join(words[k:k + n])) for k in range(len(words) - n + 1)}


@functools.lru_cache(maxsize=2)
def benchmark_ngrams(path: str, n: int, stamp: tuple[int, float]) -> frozenset[int]:
    """The n-grams of every prompt of a benchmark file: JSON lines (a string, or an object
    whose string values are its prompt) or plain text (a prompt per line). Once per process."""
    found: set[int] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                found |= ngrams(_prompt(line), n)
    except OSError as exc:
        raise SettingsError(f"--decontaminate {path}: cannot read ({exc.strerror or exc})") from None
    return frozenset(found)


def _prompt(line: str) -> str:
    text = line.strip()
    if text[:1] in ('{', '"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, dict):
            return "\n".join(v for v in value.values() if isinstance(v, str))
        if isinstance(value, str):
            return value
    return text


def contaminated(texts: list[str], opts: ExportOptions) -> bool:
    """Whether a text stating the trial's task shares an n-gram with a benchmark prompt."""
    if not any(texts):
        return False
    path = os.fspath(opts.decontaminate)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SettingsError(f"--decontaminate {path}: cannot read ({exc.strerror or exc})") from None
    bench = benchmark_ngrams(path, opts.decontaminate_ngram, (info.st_size, info.st_mtime))
    return any(not bench.isdisjoint(ngrams(text, opts.decontaminate_ngram)) for text in texts if text)


def _rank(seed: int, name: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()


def draws_needed(opts: ExportOptions) -> bool:
    return opts.max_per_task is not None or opts.val_fraction is not None


def draw(shards: dict[str, list[str]], report: ExportReport, opts: ExportOptions) -> None:
    """Apply --max-per-task and --val-fraction to the shards, in place: the rows of trials
    not drawn are dropped (counted), and the rows of validation tasks move to a
    `validation` split. A row's trial is its source_path, its task the task column."""
    trials: dict[str, set[str]] = defaultdict(set)
    for paths in shards.values():
        for path in paths:
            for batch in _batches(path, ["task", "source_path"]):
                for task, source in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                    trials[_task_of(task, source)].add(source or "")
    kept: set[str] | None = None
    if opts.max_per_task is not None:
        kept = set()
        for names in trials.values():
            kept.update(sorted(names, key=lambda n: _rank(opts.seed, n))[:opts.max_per_task])
        drawn_out = sum(len(names) for names in trials.values()) - len(kept)
        report.trials_exported -= drawn_out  # not exported after all: filtered, as by any option
        report.trials_filtered += drawn_out
    held_out: set[str] = set()
    if opts.val_fraction is not None and len(trials) > 1:
        tasks = sorted(trials, key=lambda t: _rank(opts.seed, "task\0" + t))
        count = min(len(tasks) - 1, max(1, round(opts.val_fraction * len(tasks))))
        held_out = set(tasks[:count])
    elif opts.val_fraction is not None:
        report.notes.append("--val-fraction: one task only, so no validation split")
    moved: list[str] = []
    for split, paths in shards.items():
        for path in paths:
            moved += _rewrite(path, split, kept, held_out, report)
    if opts.val_fraction is not None:
        shards[VALIDATION] = moved
        report.rows_by_split.setdefault(VALIDATION, 0)


def _task_of(task: str | None, source: str | None) -> str:
    """A row's task for the draws; a trial whose task is not known is a task of its own."""
    return task if task and task != "unknown-task" else "\0" + (source or "")


def _batches(path: str, columns: list[str]):
    with pa.memory_map(path) as source:
        for batch in pa.ipc.open_stream(source):
            yield batch.select(columns)


def _rewrite(path: str, split: str, kept: set[str] | None, held_out: set[str],
             report: ExportReport) -> list[str]:
    """Rewrite one shard without the rows not drawn; its validation rows go to a shard of
    their own, whose path is returned (none if it holds no row)."""
    out_path, val_path = path + ".drawn", f"{path}.{VALIDATION}.arrow"
    dropped = validation = 0
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_stream(source)
        with pa.OSFile(out_path, "wb") as sink, pa.ipc.new_stream(sink, reader.schema) as writer, \
                pa.OSFile(val_path, "wb") as val_sink, pa.ipc.new_stream(val_sink, reader.schema) as val_writer:
            for batch in reader:
                sources = [s or "" for s in batch.column("source_path").to_pylist()]
                tasks = [_task_of(t, s) for t, s in zip(batch.column("task").to_pylist(), sources)]
                keep = [kept is None or s in kept for s in sources]
                held = [k and t in held_out for k, t in zip(keep, tasks)]
                stay = [k and not h for k, h in zip(keep, held)]
                dropped += len(keep) - sum(keep)
                validation += sum(held)
                writer.write_batch(batch.filter(pa.array(stay, pa.bool_())))
                if any(held):
                    val_writer.write_batch(batch.filter(pa.array(held, pa.bool_())))
    os.replace(out_path, path)
    if dropped:
        report.filtered["--max-per-task"] += dropped
    report.rows -= dropped
    report.rows_by_split[split] = report.rows_by_split.get(split, 0) - dropped - validation
    if not validation:
        Path(val_path).unlink()
        return []
    report.rows_by_split[VALIDATION] = report.rows_by_split.get(VALIDATION, 0) + validation
    return [val_path]
