"""What the CLI commands do: settings from flags, YAML and env; then the orchestrator or the
hook service; then what to show. Every HarborHooksError ends the command with its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harbor_hooks.cli.console import err, out, print_failures, print_report, progress_bar
from harbor_hooks.report import printable
from harbor_hooks.errors import (
    EXIT_HOOKS, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, ExportFailed, HarborHooksError, PushError,
    Terminated,
)
from harbor_hooks.settings import HooksSettings, load_settings, yaml_section


def _code(body: Callable[[], int], on_push_error: Callable[[], None] | None = None) -> int:
    """body's exit code; a HarborHooksError is one line on stderr and its own exit code."""
    try:
        return body()
    except HarborHooksError as exc:
        err(f"error: {exc}")
        if isinstance(exc, PushError) and on_push_error is not None:
            on_push_error()
        return exc.exit_code
    except KeyboardInterrupt:  # everything begun is undone on the way here: temporary files, work dir
        err("interrupted: nothing written, what was there before is intact")
        return EXIT_INTERRUPTED
    except Terminated:
        err("terminated: nothing written, what was there before is intact")
        return EXIT_TERMINATED


def sample_job_path() -> Path:
    return Path(__file__).resolve().parent.parent / "samples" / "sample-job"


def _with_log_format(flags: dict[str, Any], log_format: str | None) -> dict[str, Any]:
    """--log-format is checked as the option it is (console | json)."""
    return {**flags, "log_format": log_format} if log_format is not None else flags


def _setup_logging(settings: HooksSettings, log_format: str | None) -> None:
    from harbor_hooks.log import setup_logging

    setup_logging(log_format or settings.log_format)


def _logger(settings: HooksSettings, log_format: str | None) -> Callable[[str], None]:
    """A log callback that sets logging up on its first line only: an export that logs
    nothing (most: only a push logs) does not load structlog (0.04 s of start-up)."""
    def log(line: str) -> None:
        _setup_logging(settings, log_format)
        from harbor_hooks.log import get_logger
        get_logger().info(line)
    return log


def run_traces_export(path: str | None, sample: bool, flags: dict[str, Any], verbose: bool,
                      log_format: str | None) -> int:
    settings: HooksSettings | None = None

    def body() -> int:
        nonlocal settings
        from harbor_hooks.errors import UsageError
        if sample and path is not None:
            raise UsageError("give --path PATH or --sample, not both")
        root = str(sample_job_path()) if sample else path
        if root is None:
            raise UsageError("give --path PATH (a trial or a folder of trials), or --sample")
        settings = load_settings(None, **_with_log_format(flags, log_format))
        if settings.engine == "local" and not settings.push and settings.output_options().kind != "dir" \
                and settings.format == "hf":
            from harbor_hooks.imports import import_pyarrow_alone
            import_pyarrow_alone()  # rows go from Python objects to Arrow to files: no datasets, no numpy
        from harbor_hooks.publish import publish

        with progress_bar("Exporting trials") as progress:
            outcome = publish(root, settings.export_options(), settings.output_options(),
                              settings.push_options(), log=_logger(settings, log_format),
                              progress=progress)
        unit = "traces" if settings.format == "otel" else "rows"
        out(f"Exported {outcome.report.rows} {unit} from {printable(root)}")
        print_report(outcome.report, verbose)
        for written in outcome.written:
            out(f"wrote {printable(written)}")
        for message in outcome.messages:
            out(message)
        return EXIT_OK

    def push_hint() -> None:
        if settings is not None and settings.output:
            err(f"the export is written to {settings.output}; push it again without re-exporting:\n"
                f"  harbor-hooks traces push {settings.output} --repo {settings.repo or settings.repo_success}")

    return _code(body, push_hint)


def run_traces_stats(path: Path, flags: dict[str, Any], plot: Path | None) -> int:
    def body() -> int:
        from harbor_hooks.outputs.files import iter_batches
        from harbor_hooks.outputs.stats import group_stats, plot as plot_stats, stat_table
        from harbor_hooks.pipeline import run_export
        from harbor_hooks.cli.console import print_stats

        from harbor_hooks.errors import UsageError
        if not path.is_dir():
            raise UsageError(f"{printable(str(path))}: no such directory (give a trial, a job or a jobs dir)")
        settings = load_settings(None, redact=False, **flags)
        with progress_bar("Reading trials") as progress:
            result = run_export(path, settings.export_options(), on_progress=progress)
        try:
            table = stat_table(iter_batches(result.shards["train"]))
        finally:
            result.cleanup()
        print_stats(group_stats(table))
        print_report(result.report, verbose=False)
        if plot is not None:
            try:
                plot_stats(table, str(plot))
            except RuntimeError as exc:
                raise ExportFailed(str(exc)) from None
            except OSError as exc:
                raise ExportFailed(f"{printable(str(plot))}: {exc.strerror or exc}") from None
            out(f"wrote {plot}")
        return EXIT_OK

    return _code(body)


def run_traces_push(source: Path, flags: dict[str, Any]) -> int:
    """Push a local export (.parquet/.jsonl file(s) or a save_to_disk folder) without re-exporting."""
    def body() -> int:
        from harbor_hooks.errors import UsageError
        from harbor_hooks.hub.push import push
        from harbor_hooks.outputs.dataset import load_local_export
        from harbor_hooks.publish import check_push_ready

        settings = load_settings(None, **flags)
        if not settings.repo:
            raise UsageError("--repo ORG/NAME is required")
        check_push_ready(settings.push_options().model_copy(update={"push": True}))  # a token, before any work
        if not source.exists() and not any(source.with_name(f"{source.stem}-{s}{source.suffix}").exists()
                                           for s in ("success", "failure")):
            raise UsageError(f"{printable(str(source))}: no such export")
        if source.is_file() and source.suffix not in (".parquet", ".jsonl", ".json"):
            raise UsageError(f"{printable(str(source))}: not an export (.parquet, .jsonl, or a folder)")
        try:
            dataset = load_local_export(source)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for a file it cannot read
            raise ExportFailed(f"{printable(str(source))}: cannot be read as a dataset "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        push(dataset, settings.push_options(), settings.repo, None, None, err)
        out(f"pushed {source} to {settings.repo}")
        return EXIT_OK

    return _code(body)


def _job_config(config: Path | None) -> dict[str, Any]:
    from harbor_hooks.hooks.runner import load_job_config

    return load_job_config(config) if config is not None else {}


def _finish(outcome: Any) -> int:
    print_failures(outcome.failures)
    if outcome.job_code:
        return outcome.job_code
    return EXIT_HOOKS if outcome.failures else EXIT_OK


def run_job_command(config: Path | None, job_dir: Path | None, runner_cmd: str | None,
                    agent: str | None, model: str | None, flags: dict[str, Any],
                    log_format: str | None) -> int:
    def body() -> int:
        from harbor_hooks.errors import UsageError
        from harbor_hooks.hooks.service import run_with_hooks
        from harbor_hooks.publish import check_push_ready

        if config is None and job_dir is None:
            raise UsageError("give --config JOB.yaml to run a job, or --job-dir DIR for a finished one")
        if job_dir is not None and not job_dir.is_dir():
            raise UsageError(f"--job-dir {job_dir}: not a directory")
        cfg = _job_config(config)
        settings = load_settings(yaml_section(cfg), **_with_log_format(flags, log_format))
        _setup_logging(settings, log_format)
        if settings.traces:
            check_push_ready(settings.push_options())
        elif set(flags) - {"traces"}:
            err(f"note: --export-* options given ({', '.join(sorted(set(flags) - {'traces'}))}) but no "
                "--export-traces: nothing will be exported")
        return _finish(run_with_hooks(cfg, settings, job_dir=job_dir, runner_cmd=runner_cmd,
                                      agent=agent, model=model))

    return _code(body)


def run_sweeps_command(config: Path, max_sweeps: int, trials_per_task: int, hint: str | None,
                       hints_file: Path | None, runner_cmd: str | None, agent: str | None,
                       model: str | None, flags: dict[str, Any], log_format: str | None) -> int:
    def body() -> int:
        from harbor_hooks.hooks.service import load_hints, run_sweeps
        from harbor_hooks.publish import check_push_ready

        cfg = _job_config(config)
        settings = load_settings(yaml_section(cfg), defaults={"episodes": "last"},
                                 **_with_log_format(flags, log_format))
        _setup_logging(settings, log_format)
        check_push_ready(settings.push_options())
        hints = load_hints(hints_file)
        return _finish(run_sweeps(cfg, settings, max_sweeps=max_sweeps, trials_per_task=trials_per_task,
                                  hint=hint, hints=hints, runner_cmd=runner_cmd, agent=agent, model=model))

    return _code(body)
