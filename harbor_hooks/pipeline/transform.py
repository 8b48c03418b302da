"""One trial to its rows, in a worker: read, filter, redact, render; and a batch of trials to
(split, row, size) triples. Every filter returns the option that drops a trial or a row, or
None, and the caller counts the drops per option."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson

from harbor_hooks.errors import TraceReadError
from harbor_hooks.formats import row_messages
from harbor_hooks.formats.render import render_rows, selected_episodes
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline.redact import Redactor
from harbor_hooks.pipeline.sampling import contaminated
from harbor_hooks.pipeline.tokens import add_token_columns, load_tokenizer
from harbor_hooks.readers.atif import has_trajectory, read_atif_trial
from harbor_hooks.readers.episodes import episode_dirs, read_episode_trial
from harbor_hooks.readers.files import ReadLimits, TrialFiles
from harbor_hooks.readers.meta import JobResults, TrialMeta, load_trial_meta
from harbor_hooks.readers.trace import TrialTrace, Turn
from harbor_hooks.report import ExportReport, fs_text

DEDUPE_KEY = "_dedupe_key"
T = TypeVar("T")


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


def read_trial(trial_dir: str, jobs: JobResults, opts: ExportOptions, report: ExportReport,
               metas: list[TrialMeta] | None = None) -> tuple[TrialMeta, TrialTrace, TrialFiles] | None:
    """Metadata and trace of one trial, or None (skipped or filtered, and reported); metas
    gets the metadata once read, the trial filtered out or not (--incremental keeps it)."""
    files = TrialFiles(trial_dir, report, ReadLimits(opts.max_file_bytes, opts.max_message_bytes),
                       token_ids=opts.token_ids)
    try:
        meta = load_trial_meta(trial_dir, jobs, files)
    except TraceReadError as exc:
        report.skip("trial", exc.path, exc.reason)
        return None
    if metas is not None:
        metas.append(meta)
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
            # the last complete episode is all that is exported with --episodes last or
            # --rows trajectory (the instruction is read from the first)
            last_only = (opts.episodes == "last" or opts.rows == "trajectory") and not opts.instruction_metadata
            trace = read_episode_trial(trial_dir, meta, files, last_only)
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
    if opts.filter in ("success", "failure") and meta.success != (opts.filter == "success"):
        return "--filter"
    if opts.min_reward is not None and (meta.reward is None or meta.reward < opts.min_reward):
        return "--min-reward"
    if opts.exclude_exceptions and meta.exception is not None:
        return "--exclude-exceptions"
    if not _matches(meta.agent, opts.agent):
        return "--agent"
    if not _matches(meta.task, opts.task):
        return "--task"
    return None


def row_filter(row: dict[str, Any], size: int, opts: ExportOptions) -> str | None:
    if opts.schema == "prompt-completion" and not row["completion"]:
        return "--schema prompt-completion (no assistant turn)"
    if opts.max_turns is not None and row["n_turns"] > opts.max_turns:
        return "--max-turns"
    if opts.max_chars is not None and size > opts.max_chars:
        return "--max-chars"
    if not _matches(row["model"], opts.model):
        return "--model"
    if opts.max_tokens is not None and row["n_tokens"] > opts.max_tokens:
        return "--max-tokens"
    return None


def trial_rows(trial_dir: str, root: str, jobs: JobResults, opts: ExportOptions, report: ExportReport,
               redactor: Redactor | None) -> tuple[TrialMeta | None, list[dict[str, Any]]]:
    metas: list[TrialMeta] = []
    found = read_trial(trial_dir, jobs, opts, report, metas)
    if found is None:
        return (metas or [None])[0], []
    meta, trace, files = found
    read_meta = meta  # as read: what --incremental records of the trial, before redaction
    verifier = _verifier_output(trial_dir, files) if opts.verifier_metadata else None
    turns = trace.unique_turns()
    source_path = fs_text(_relative(trial_dir, root) if root else trial_dir)
    if redactor is not None:
        meta, source_path, verifier = _redacted(redactor, trace, turns, meta, source_path, verifier)
    report.images += sum(len(t.images) for t in turns)
    report.audio += sum(len(t.audio) for t in turns)
    media = load_media(trial_dir, turns, files) if opts.media == "keep" else None
    selected = selected_episodes(trace, opts)
    if len(selected) > opts.max_rows_per_trial:  # cut before rendering: rows grow quadratically
        report.skip("row", trial_dir, f"{len(selected) - opts.max_rows_per_trial} episodes beyond "
                    f"--max-rows-per-trial ({opts.max_rows_per_trial})")
        selected = selected[:opts.max_rows_per_trial]
    rows = render_rows(selected, trace, meta, opts, source_path, verifier, media, report.reshaped)
    if not rows:
        report.skip("trial", trial_dir, "no complete episode to export")
    elif opts.decontaminate is not None and contaminated(_task_texts(trace), opts):
        report.filtered["--decontaminate"] += len(rows)
        return read_meta, []
    return read_meta, rows


def _task_texts(trace: TrialTrace) -> list[str]:
    """What states the task: the instruction (Harbor's: the first step's message, which may
    be a system prompt) and the first user message of each conversation."""
    texts = [trace.instruction or ""]
    for conversation in trace.conversations:
        first = conversation.episodes[0].turns if conversation.episodes else ()
        texts += [t.text for t in first if t.role == "user"][:1]
    return texts


_META_FIELDS = ("agent", "model", "model_provider", "date", "task", "trial_name", "run_id", "result")


def _redacted(redactor: Redactor, trace: TrialTrace, turns: list[Turn], meta: TrialMeta,
              source_path: str, verifier: str | None) -> tuple[TrialMeta, str, str | None]:
    """The trial's texts redacted in place, and its metadata and verifier output redacted like
    them: a token in a task, trial or subagent name or a run id must not reach the rows,
    the report or the card (one trigger scan for the whole trial)."""
    values = [getattr(meta, f) or "" for f in _META_FIELDS] + [source_path, verifier or ""]
    values += [v for c in trace.conversations for v in (c.source, c.agent, c.model)]
    redacted = redactor.trace(trace, turns, values)
    if redacted == values:
        return meta, source_path, verifier
    n = len(_META_FIELDS)
    meta = dataclasses.replace(meta, **{f: v or getattr(meta, f) for f, v in zip(_META_FIELDS, redacted)})
    for k, conversation in enumerate(trace.conversations):
        conversation.source, conversation.agent, conversation.model = redacted[n + 2 + 3 * k:n + 5 + 3 * k]
    return meta, redacted[n], redacted[n + 1] if verifier is not None else None


def _relative(path: str, root: str) -> str:
    """os.path.relpath(path, root) without its two abspath calls, for the usual case of a
    path found under root."""
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix) and os.pardir not in path[len(prefix):].split(os.sep):
        return os.path.normpath(path[len(prefix):])
    return os.path.relpath(path, root)


def load_media(trial_dir: str, turns: list[Turn], files: TrialFiles) -> dict[str, bytes]:
    """--media keep: the bytes of every image and audio clip the turns refer to (paths
    relative to agent/). Only files inside agent/ are read: a path or a link leading out of
    it is refused, and a missing file skipped, each counted (its text placeholder stays)."""
    found = {}
    agent_dir = os.path.join(trial_dir, "agent")
    real_agent = None
    for path in dict.fromkeys(p for t in turns for p in (*t.images, *t.audio)):
        full = os.path.normpath(os.path.join(agent_dir, path))
        try:
            if not full.startswith(os.path.normpath(agent_dir) + os.sep):
                raise TraceReadError(os.path.join(agent_dir, path), "path leads outside agent/")
            real_agent = real_agent or os.path.realpath(agent_dir)
            if not os.path.realpath(full).startswith(real_agent + os.sep):
                raise TraceReadError(full, "symlink points outside agent/")
            found[path] = files.bytes(full)
        except TraceReadError as exc:
            files.report.skip("file", exc.path, f"media kept as a text placeholder only: {exc.reason}")
    return found


def split_of(row: dict[str, Any], split_by: str | None) -> str:
    if split_by == "outcome":
        return "success" if row["success"] else "failure"
    if split_by == "source":
        return row["trace_source"]
    return "train"


def _row_size(row: dict[str, Any]) -> int:
    return sum(len(m.get("content") or m.get("value") or "") for m in row_messages(row))


def conversation_key(row: dict[str, Any]) -> bytes:
    return hashlib.blake2b(orjson.dumps(row_messages(row)), digest_size=16).digest()


class TaskTrials:
    """What every trial of a task is read with: the job-level results (what reading them
    reported goes into the task's report), the redactor and the tokenizer."""

    def __init__(self, opts: ExportOptions, report: ExportReport, split_by: str | None):
        self.opts, self.report, self.split_by = opts, report, split_by
        self.jobs = JobResults(report)
        self.redactor = Redactor(opts.redact_patterns) if opts.redact else None
        self.tokenizer = load_tokenizer(str(opts.tokenizer)) if opts.tokenizer is not None else None

    def rows(self, trial_dir: str, root: str, report: ExportReport
             ) -> tuple[TrialMeta | None, list[tuple[str, dict[str, Any], int]]]:
        """The trial's metadata (None when not read) and its (split, row, size) triples, filters
        applied; what it skipped or counted goes into report."""
        opts, meta = self.opts, None

        def rows_kept() -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any], int]]]:
            nonlocal meta
            meta, rows = trial_rows(trial_dir, root, self.jobs, opts, report, self.redactor)
            kept = []
            for row in rows:
                if self.tokenizer is not None and not add_token_columns(row, self.tokenizer, report):
                    continue
                size = _row_size(row)
                reason = row_filter(row, size, opts)
                if reason is not None:
                    report.filtered[reason] += 1
                    continue
                if opts.dedupe:
                    row[DEDUPE_KEY] = conversation_key(row)
                kept.append((split_of(row, self.split_by), row, size))
            return rows, kept

        found = at_trial_boundary(trial_dir, report, rows_kept)
        if found is None:
            return meta, []
        rows, kept = found
        if rows:
            report.trials_exported += 1
        return meta, kept


def task_rows(trial_dirs: list[str], root: str, opts: ExportOptions, report: ExportReport,
              split_by: str | None = None) -> Iterator[tuple[str, dict[str, Any], int]]:
    """(split, row, size) of every row a batch of trials exports, filters applied."""
    task = TaskTrials(opts, report, split_by)
    for trial_dir in trial_dirs:
        yield from task.rows(trial_dir, root, report)[1]
    redact_report(task.redactor, report)


def at_trial_boundary(trial_dir: str, report: ExportReport, work: Callable[[], T]) -> T | None:
    """work(), or None when it raised: no error of one trial's reading or rendering reaches
    the others; the trial is skipped, counted with its reason."""
    try:
        return work()
    except RecursionError:
        report.skip("trial", trial_dir, "nested too deeply to read")
    except Exception as exc:  # noqa: BLE001 - a bug or an input no reader foresaw
        report.skip("trial", trial_dir, f"could not be exported ({type(exc).__name__}: {exc})")
    return None


def redact_report(redactor: Redactor | None, report: ExportReport, counted: bool = True) -> None:
    """The report's skip reasons and notes redacted (they quote data: a reference, a source
    name), one trigger scan for all of them; the redactions (of the whole task) counted unless
    not counted (a trial's report under --incremental: the caller counts them)."""
    if redactor is None:
        return
    rules = redactor.rules_for([t for skip in report.skips for t in (skip.path, skip.reason)] + report.notes)
    if rules:
        for skip in report.skips:
            skip.path, skip.reason = redactor.text(skip.path, rules), redactor.text(skip.reason, rules)
        report.notes = [redactor.text(note, rules) for note in report.notes]
    if counted:
        report.redactions.update(redactor.counts)
