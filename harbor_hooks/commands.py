"""What the CLI commands do, kept out of cli.py so the commands stay thin."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harbor_hooks.report import ExportReport
from harbor_hooks.imports import import_pyarrow_alone
from harbor_hooks.settings import HooksSettings, SettingsError, load_settings, output_kind

MAX_SKIP_LINES = 20
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HOOKS = 0, 1, 2, 3


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal's stderr; nothing when output is piped."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def print_report(report: ExportReport, verbose: bool) -> None:
    for line in report.summary_lines():
        print(line)
    shown = report.skips if verbose else report.skips[:MAX_SKIP_LINES]
    for skip in shown:
        err(skip.line())
    if len(report.skips) > len(shown):
        err(f"... and {len(report.skips) - len(shown)} more skipped items "
            "(--verbose lists them all, --report FILE writes them as JSON)")


def settings_or_exit(section: dict[str, Any] | None, defaults: dict[str, Any] | None = None,
                     **flags: Any) -> HooksSettings:
    import typer

    try:
        return load_settings(section, defaults=defaults, **flags)
    except SettingsError as exc:
        err(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def _job_config(config: Path | None) -> dict[str, Any]:
    import typer

    from harbor_hooks.runner import RunnerError, load_job_config

    if config is None:
        return {}
    try:
        return load_job_config(config)
    except RunnerError as exc:
        err(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def _finish(outcome: Any) -> int:
    from harbor_hooks.plugins import print_failures

    print_failures(outcome.failures)
    if outcome.job_code:
        return outcome.job_code
    return EXIT_HOOKS if outcome.failures else EXIT_OK


def run_job_command(config: Path | None, job_dir: Path | None, runner_cmd: str | None,
                    agent: str | None, model: str | None, flags: dict[str, Any]) -> int:
    from harbor_hooks.hub import PushError
    from harbor_hooks.runner import RunnerError
    from harbor_hooks.publish import check_push_ready
    from harbor_hooks.service import run_with_hooks
    from harbor_hooks.settings import yaml_section

    if config is None and job_dir is None:
        err("error: give --config JOB.yaml to run a job, or --job-dir DIR for a finished one")
        return EXIT_USAGE
    if job_dir is not None and not job_dir.is_dir():
        err(f"error: --job-dir {job_dir}: not a directory")
        return EXIT_USAGE
    cfg = _job_config(config)
    try:
        section = yaml_section(cfg)
    except SettingsError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    settings = settings_or_exit(section, **flags)
    from harbor_hooks.log import setup_logging
    setup_logging(settings.log_format)
    try:
        if settings.traces:
            check_push_ready(settings, split=False)
        outcome = run_with_hooks(cfg, settings, job_dir=job_dir, runner_cmd=runner_cmd,
                                 agent=agent, model=model)
    except (SettingsError, PushError, RunnerError) as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    return _finish(outcome)


def run_sweeps_command(config: Path, max_sweeps: int, trials_per_task: int, hint: str | None,
                       hints_file: Path | None, runner_cmd: str | None, agent: str | None,
                       model: str | None, flags: dict[str, Any]) -> int:
    from harbor_hooks.hub import PushError
    from harbor_hooks.runner import RunnerError
    from harbor_hooks.publish import check_push_ready
    from harbor_hooks.service import load_hints, run_sweeps
    from harbor_hooks.settings import yaml_section

    cfg = _job_config(config)
    try:
        settings = settings_or_exit(yaml_section(cfg), defaults={"episodes": "last"}, **flags)
        from harbor_hooks.log import setup_logging
        setup_logging(settings.log_format)
        check_push_ready(settings, split=True)
        hints = load_hints(hints_file)
        outcome = run_sweeps(cfg, settings, max_sweeps=max_sweeps, trials_per_task=trials_per_task,
                             hint=hint, hints=hints, runner_cmd=runner_cmd, agent=agent, model=model)
    except (SettingsError, PushError, RunnerError, ValueError) as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    return _finish(outcome)


def run_traces_export(path: str, flags: dict[str, Any], recursive: bool, splits: bool,
                      verbose: bool) -> int:
    from harbor_hooks.hub import PushError

    try:
        settings = load_settings(None, **flags)
    except SettingsError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    if settings.engine == "ray":
        return run_ray_command(path, settings, recursive, splits, verbose)
    if not settings.push and (settings.output is None or output_kind(os.fspath(settings.output)) != "dir"):
        import_pyarrow_alone()  # rows go from Python objects to Arrow to files: no datasets, no numpy
    from harbor_hooks.publish import export_and_publish

    try:
        with progress_bar("Exporting trials") as progress:
            outcome = export_and_publish(path, settings, recursive=recursive, splits=splits,
                                         progress=progress)
    except SettingsError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    except PushError as exc:
        err(f"error: {exc}")
        if settings.output:
            err(f"the export is written to {settings.output}; push it again without re-exporting:\n"
                f"  harbor-hooks traces push {settings.output} --repo {settings.repo or settings.repo_success}")
        return EXIT_FAILED
    except OSError as exc:
        err(f"error: {exc.filename or ''}: {exc.strerror or exc}")
        return EXIT_FAILED
    report = outcome.report
    print(f"Exported {report.rows} rows from {path}")
    print_report(report, verbose)
    for written in outcome.written:
        print(f"wrote {written}")
    for message in outcome.messages:
        print(message)
    return EXIT_OK


def run_ray_command(path: str, settings: HooksSettings, recursive: bool, splits: bool,
                    verbose: bool) -> int:
    from harbor_hooks.engine_ray import run_ray_export

    if settings.output is None or settings.push or splits or settings.separate:
        err("error: --engine ray writes Parquet shards to --output DIR (a folder or a URL); "
            "push them afterwards with `harbor-hooks traces push DIR --repo ORG/NAME`")
        return EXIT_USAGE
    try:
        report = run_ray_export(path, settings.export_options(), str(settings.output),
                                recursive=recursive, num_cpus=settings.workers,
                                address=settings.ray_address)
    except (RuntimeError, ValueError) as exc:
        err(f"error: {exc}")
        return EXIT_FAILED
    print(f"Exported {report.rows} rows from {path}")
    print_report(report, verbose)
    print(f"wrote {settings.output}")
    return EXIT_OK


def run_traces_stats(path: Path, settings: HooksSettings, plot: Path | None) -> int:
    from harbor_hooks.export import run_export
    from harbor_hooks.output import iter_batches
    from harbor_hooks.stats import group_stats, plot as plot_stats, print_table, stat_table

    with progress_bar("Reading trials") as progress:
        result = run_export(path, settings.export_options(), workers=settings.workers,
                            on_progress=progress)
    try:
        table = stat_table(iter_batches(result.shards["train"]))
    finally:
        result.cleanup()
    print_table(group_stats(table))
    print_report(result.report, verbose=False)
    if plot is not None:
        try:
            plot_stats(table, str(plot))
        except RuntimeError as exc:
            err(f"error: {exc}")
            return EXIT_FAILED
        print(f"wrote {plot}")
    return EXIT_OK


def run_traces_push(source: Path, settings: HooksSettings) -> int:
    """Push a local export (.parquet/.jsonl file(s) or a save_to_disk folder) without re-exporting."""
    from harbor_hooks.hub import PushError, push

    try:
        dataset = load_local_export(source)
        if not settings.repo:
            raise SettingsError("--repo ORG/NAME is required")
        push(dataset, settings.push_options(settings.repo), None, None, err)
    except SettingsError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    except (PushError, FileNotFoundError, ValueError) as exc:
        err(f"error: {exc}")
        return EXIT_FAILED
    print(f"pushed {source} to {settings.repo}")
    return EXIT_OK


def load_local_export(source: Path) -> Any:
    from datasets import DatasetDict, load_dataset, load_from_disk

    source = Path(source)
    if source.is_dir():
        shards = sorted(source.glob("*.parquet"))
        if shards and not (source / "dataset_info.json").exists():  # --engine ray output
            return load_dataset("parquet", data_files=[os.fspath(p) for p in shards], split="train")
        return load_from_disk(os.fspath(source))
    kind = "parquet" if source.suffix == ".parquet" else "json"
    siblings = {s: source.with_name(f"{source.stem}-{s}{source.suffix}") for s in ("success", "failure")}
    if not source.exists() and all(p.exists() for p in siblings.values()):
        return DatasetDict({s: load_dataset(kind, data_files=os.fspath(p), split="train")
                            for s, p in siblings.items()})
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such export")
    return load_dataset(kind, data_files=os.fspath(source), split="train")
