"""One export path for every entry point: export, write outputs and report, push (one or two repos)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson

from harbor_hooks.export import ExportResult, run_export
from harbor_hooks.report import ExportReport
from harbor_hooks.settings import HooksSettings, SettingsError, output_kind


@dataclass
class Outcome:
    report: ExportReport
    written: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def push_plan(settings: HooksSettings, split: bool) -> list[tuple[str | None, str]]:
    """(split or None for the whole dataset, repo) pairs to push; empty when not pushing.

    Raises SettingsError before any work when the repos asked for are missing.
    """
    if not settings.push:
        return []
    if settings.separate:
        if not (settings.repo_success and settings.repo_failure):
            raise SettingsError("--export-separate needs --export-repo-success and --export-repo-failure")
        return [("success", settings.repo_success), ("failure", settings.repo_failure)]
    if not settings.repo:
        raise SettingsError("--push needs --repo ORG/NAME")
    return [(None, settings.repo)]


def require_token(settings: HooksSettings) -> str:
    """The Hub token a push will use; a SettingsError naming where to set it when there is none."""
    from harbor_hooks.hub import PushError, resolve_token

    try:
        return resolve_token(settings.token_value())
    except PushError as exc:
        raise SettingsError(str(exc)) from None


def check_push_ready(settings: HooksSettings, split: bool) -> list[tuple[str | None, str]]:
    """The push plan, after failing (SettingsError) when a push was asked for and cannot
    happen: missing repos or no token. Called before any work."""
    plan = push_plan(settings, split)
    if plan:
        require_token(settings)
    return plan


def export_and_publish(
    roots: str | os.PathLike | list[str | os.PathLike],
    settings: HooksSettings,
    *,
    recursive: bool = True,
    splits: bool = False,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Export roots with settings; write --output/--report; push when asked.

    splits=True (or --separate) exports a success/failure DatasetDict. Push
    problems raise PushError after the local output is written.
    """
    split = splits or settings.separate
    plan = check_push_ready(settings, split)
    opts = settings.export_options(split_by="outcome" if split else None)
    target = os.fspath(settings.output) if settings.output is not None else None
    streamed = target is not None and output_kind(target) != "dir"
    files: Any = nullcontext()
    if streamed:  # written as the tasks finish, while the workers go on
        from harbor_hooks.output import output_files
        files = output_files(target, opts.arrow_schema(), opts.fixed_splits())
    result = None
    try:
        with files as add:
            result = run_export(roots, opts, recursive=recursive, workers=settings.workers,
                                on_progress=progress, on_shards=add)
        outcome = Outcome(result.report)
        if target is not None:
            from harbor_hooks.output import write_output, written_files
            outcome.written = (written_files(target, opts.fixed_splits()) if streamed
                               else write_output(result, target))
        if settings.report is not None:
            write_report(result.report, os.fspath(settings.report))
            outcome.written.append(os.fspath(settings.report))
        if plan:
            _push(result, settings, plan, outcome, log)
    finally:
        if result is not None:
            result.cleanup()
    return outcome


def write_report(report: ExportReport, path: str) -> None:
    from harbor_hooks.output import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))


def _push(result: ExportResult, settings: HooksSettings, plan: list[tuple[str | None, str]],
          outcome: Outcome, log: Callable[[str], None]) -> None:
    from harbor_hooks.hub import CardInfo, push, row_counts
    from harbor_hooks.output import to_dataset

    dataset = to_dataset(result)
    card = CardInfo(options=settings.model_dump(
        include={"episodes", "filter", "sharegpt", "subagents", "instruction_metadata",
                 "verifier_metadata", "redact"}))
    for split, repo in plan:
        part: Any = dataset if split is None else dataset[split]
        if split is not None and len(part) == 0:
            outcome.messages.append(f"no {split} rows: nothing pushed to {repo}")
            continue
        push(part, settings.push_options(repo), result.report, card, log)
        outcome.messages.append(f"pushed {sum(row_counts(part).values())} rows to {repo}")
