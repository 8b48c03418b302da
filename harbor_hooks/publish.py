"""The orchestrator, used by every front door: export -> outputs -> report -> card and push.

The CLI, the Python API, the exporter plugin (so `run`, `sweeps run` and the Harbor
plugin) and both engines go through publish(); what differs between them is only
where the options come from and what is done with the Outcome.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson

from harbor_hooks.errors import ExportFailed, SettingsError, UsageError
from harbor_hooks.options import ExportOptions, OutputOptions, PushOptions, check_endpoint
from harbor_hooks.pipeline import run_export
from harbor_hooks.pipeline.shards import ExportResult, fixed_splits
from harbor_hooks.report import ExportReport, printable


@dataclass
class Outcome:
    report: ExportReport
    written: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    dataset: Any = None  # with keep_dataset: the Dataset / DatasetDict, memory-mapped from the shards


def push_plan(push: PushOptions) -> list[tuple[str | None, str]]:
    """(split or None for the whole dataset, repo) pairs to push; empty when not pushing.

    Raises SettingsError when the repos asked for are missing."""
    if not push.push:
        return []
    if push.separate:
        if not (push.repo_success and push.repo_failure):
            raise SettingsError("a push with separate needs repo_success and repo_failure "
                                "(--repo-success / --export-repo-success ORG/NAME, and the same for failure)")
        return [("success", push.repo_success), ("failure", push.repo_failure)]
    if not push.repo:
        raise SettingsError("a push needs a repo: --repo / --export-repo ORG/NAME (repo: in YAML, repo_id= in Python)")
    return [(None, push.repo)]


def check_push_ready(push: PushOptions) -> list[tuple[str | None, str]]:
    """The push plan, after failing (SettingsError) when a push was asked for and cannot
    happen: missing repos or no token. Called before any work."""
    plan = push_plan(push)
    if plan:
        from harbor_hooks.errors import PushError
        from harbor_hooks.hub.push import resolve_token
        try:
            resolve_token(push.token_value())
        except PushError as exc:
            raise SettingsError(str(exc)) from None
    return plan


def split_by_of(export: ExportOptions, push: PushOptions, by_source: bool = False) -> str | None:
    """How the rows are split: by trace source (the API's merge_subagents=False), by outcome
    (--splits, or two repos), or not at all."""
    if by_source:
        return "source"
    return "outcome" if export.splits or push.separate else None


@dataclass
class _Plan:
    """What an export will do, decided (and checked) before any work."""

    roots: list[str]
    pushes: list[tuple[str | None, str]]
    split_by: str | None
    target: str | None
    splits: list[str] | None
    streamed: bool  # the output files written as the tasks finish, while the workers go on
    store: str | None = None  # --incremental: the store of rows reused


def plan_export(roots: str | os.PathLike | list[str | os.PathLike], export: ExportOptions,
                output: OutputOptions, push: PushOptions, by_source: bool = False,
                store: str | None = None) -> _Plan:
    """Every check that can be made before any work: the roots exist, a push can happen, the
    output may be written where it is asked for. Raises UsageError / SettingsError."""
    roots = [os.fspath(r) for r in (roots if isinstance(roots, list) else [roots])]
    missing = [r for r in roots if "://" not in r and not os.path.isdir(r)]
    if missing:
        raise UsageError(f"{printable(missing[0])}: no such directory (give a trial, a job or a jobs dir)")
    target = os.fspath(output.output) if output.output is not None else None
    if output.incremental and store is None:
        if target is None or "://" in target:
            raise UsageError("--incremental keeps its store beside the output: give a local --output")
        from harbor_hooks.pipeline.store import store_of
        store = store_of(target)
    if export.tokenizer is not None:
        from harbor_hooks.pipeline.tokens import check_tokenizer
        check_tokenizer(export.tokenizer)
    pushes = check_push_ready(push)
    split_by = split_by_of(export, push, by_source)
    splits = fixed_splits(split_by, export.val_fraction is not None)
    streamed = target is not None and output.kind != "dir" and "://" not in target and splits is not None
    if store is not None:
        if any("://" in r for r in roots):
            raise UsageError("--incremental stamps the trials' files: give folders on this machine, not URLs")
        from harbor_hooks.pipeline.store import check_store
        check_store(store)
    if target is not None:
        from harbor_hooks.outputs.files import written_files
        from harbor_hooks.outputs.guard import check_targets
        check_targets(output, written_files(target, splits) if streamed else [target], roots)
    return _Plan(roots, pushes, split_by, target, splits, streamed, store)


def publish(
    roots: str | os.PathLike | list[str | os.PathLike],
    export: ExportOptions,
    output: OutputOptions = OutputOptions(),
    push: PushOptions = PushOptions(),
    *,
    by_source: bool = False,
    keep_dataset: bool = False,
    log: Callable[[str], None] = lambda line: None,
    progress: Callable[[int, int], None] | None = None,
    store: str | None = None,
) -> Outcome:
    """Export roots; write the output and the report; push when asked (one or two repos).

    by_source splits the rows by trace source (Harbor's merge_subagents=False); keep_dataset
    returns the Dataset in the Outcome (the API); store: where the stored rows are (the
    exporter plugin's; --incremental's is beside the output). A push that cannot happen raises
    SettingsError before any work; a failed push raises PushError after the local output is
    written; an output that cannot be written raises ExportFailed naming it."""
    if output.format == "otel":
        if output.incremental or store is not None:
            raise UsageError("--incremental keeps rows: it takes --format hf")
        return _publish_otel(roots, export, output, push)
    plan = plan_export(roots, export, output, push, by_source, store)
    result = None
    try:
        with _output_files(plan, export) as add:
            result = run_export(plan.roots, export, split_by=plan.split_by, on_progress=progress, on_shards=add,
                                store=plan.store)
        outcome = Outcome(result.report, messages=list(result.messages))
        _write(outcome, result, plan, output)
        if plan.pushes or keep_dataset:
            from harbor_hooks.outputs.dataset import to_dataset
            outcome.dataset = to_dataset(result)
        if plan.pushes:
            _push(outcome, result, push, plan.pushes, log)
    except OSError as exc:  # a full disk, an unwritable output: one line naming the file
        raise ExportFailed(f"{printable(str(exc.filename or plan.target or plan.roots[0]))}: "
                           f"{exc.strerror or exc}") from None
    finally:
        if result is not None and not keep_dataset:
            result.cleanup()
    return outcome


def _output_files(plan: _Plan, export: ExportOptions) -> Any:
    if not plan.streamed:
        return nullcontext()
    from harbor_hooks.formats import row_schema
    from harbor_hooks.outputs.files import output_files
    return output_files(plan.target, row_schema(export), plan.splits)


def _publish_otel(roots: str | os.PathLike | list[str | os.PathLike], export: ExportOptions,
                  output: OutputOptions, push: PushOptions) -> Outcome:
    """--format otel: one OTLP trace per trial, to --output and/or --endpoint (no dataset)."""
    if push.push:
        raise UsageError("--format otel sends traces to --output or --endpoint; a Hub push takes --format hf")
    roots = [os.fspath(r) for r in (roots if isinstance(roots, list) else [roots])]
    target = os.fspath(output.output) if output.output is not None else None
    plan_export(roots, export, output.model_copy(update={"output": None}), PushOptions())  # roots exist
    if target is not None:
        from harbor_hooks.outputs.guard import check_targets
        check_targets(output.model_copy(update={"format": "hf"}), [target], roots)
    from harbor_hooks.outputs.otel import write_traces
    from harbor_hooks.pipeline.otel import otel_requests

    report = ExportReport()
    endpoint = output.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if endpoint is not None:
        try:
            check_endpoint(endpoint)
        except ValueError as exc:
            raise UsageError(f"OTEL_EXPORTER_OTLP_ENDPOINT: {exc}") from None
    try:
        written = write_traces(otel_requests(roots, export, report), target, output.encoding, endpoint)
    except OSError as exc:
        raise ExportFailed(f"{printable(str(exc.filename or target or roots[0]))}: {exc.strerror or exc}") from None
    outcome = Outcome(report, written=written)
    if output.report is not None:
        write_report(report, os.fspath(output.report))
        outcome.written.append(os.fspath(output.report))
    return outcome


def _write(outcome: Outcome, result: ExportResult, plan: _Plan, output: OutputOptions) -> None:
    if plan.streamed:
        from harbor_hooks.outputs.files import written_files
        outcome.written = written_files(plan.target, plan.splits)
    elif plan.target is not None:
        from harbor_hooks.outputs.dataset import write_output
        outcome.written = write_output(result, plan.target)
    if output.report is not None:
        write_report(result.report, os.fspath(output.report))
        outcome.written.append(os.fspath(output.report))


def write_report(report: ExportReport, path: str) -> None:
    from harbor_hooks.outputs.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))


def _push(outcome: Outcome, result: ExportResult, push: PushOptions,
          plan: list[tuple[str | None, str]], log: Callable[[str], None]) -> None:
    from harbor_hooks.hub.push import CardInfo, push as push_to_hub, row_counts

    dataset = outcome.dataset
    card = CardInfo(options=result.options.model_dump(mode="json"))
    if result.split_by == "source":  # as Harbor: <repo> for the main agent, <repo>-<name> for subagents
        (_, repo), = plan
        plan = [(name, repo if name == "main" else f"{repo}-{name}") for name in dataset]
    for split, repo in plan:
        part: Any = dataset if split is None else dataset[split]
        if split is not None and len(part) == 0:
            outcome.messages.append(f"no {split} rows: nothing pushed to {repo}")
            continue
        push_to_hub(part, push, repo, result.report, card, log)
        outcome.messages.append(f"pushed {sum(row_counts(part).values())} rows to {repo}")
