"""`harbor-hooks`: thin typer commands; their option flags are generated from the option models.

Exit codes are in harbor_hooks/errors.py (and the README).
"""

# No `from __future__ import annotations` here: typer reads every command's annotations
# twice as it builds the CLI, and as strings each is evaluated anew (0.04 s of start-up)

import gc
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from harbor_hooks.cli.flags import option_params, option_values, with_options
from harbor_hooks.errors import Terminated
from harbor_hooks.options import ExportOptions, OutputOptions, PushOptions, ServiceOptions
from harbor_hooks.version import __version__

# rich_markup_mode=None: help texts are plain text ("[image: path]" is no markup tag)
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Turn Harbor agent runs into SFT datasets, by hand or when jobs complete.")
traces_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Export and inspect traces.")
sweeps_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Run successive sweeps and export their splits.")
app.add_typer(traces_app, name="traces")
app.add_typer(sweeps_app, name="sweeps")

LogFormat = Annotated[Optional[str], typer.Option("--log-format", help="console | json: logs on stderr.")]
RunnerCmd = Annotated[Optional[str], typer.Option("--runner-cmd", help="Command that runs the job; {config} is replaced by its config path.")]
Agent = Annotated[Optional[str], typer.Option("--agent", "-a", help="Agent name, handed to the runner.")]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name, handed to the runner.")]

EXPORT_FLAGS = option_params((ExportOptions, OutputOptions, PushOptions), "export")
RUN_FLAGS = option_params((ServiceOptions, ExportOptions, OutputOptions, PushOptions), "run")
SWEEPS_FLAGS = option_params((ExportOptions, OutputOptions, PushOptions), "sweeps")
PUSH_FLAGS = option_params((PushOptions,), "push", include=set(PushOptions.model_fields) - {
    "push", "separate", "repo_success", "repo_failure"})
STATS_FLAGS = option_params((ExportOptions,), "export", include={"filter", "workers"})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"harbor-hooks {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


@traces_app.command("export")
@with_options(EXPORT_FLAGS)
def traces_export(
    path: Annotated[Optional[str], typer.Option("--path", "-p", help="A trial dir, or a root holding trials (a job, a jobs dir; with --engine ray also an fsspec URL).")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Export the sample job bundled with harbor-hooks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose/--no-verbose", help="List every skipped item.")] = False,
    log_format: LogFormat = None,
    **options,
) -> None:
    """Export Harbor trials to an SFT dataset: prints the rows produced and what was skipped."""
    from harbor_hooks.cli.commands import run_traces_export

    flags = option_values(options, EXPORT_FLAGS)
    raise typer.Exit(run_traces_export(path, sample, flags, verbose=verbose, log_format=log_format))


@traces_app.command("stats")
@with_options(STATS_FLAGS)
def traces_stats(
    path: Annotated[Path, typer.Argument(help="A trial dir, or a root holding trials.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write reward, turns and length distributions to this PNG.")] = None,
    **options,
) -> None:
    """Trials, rows, success rate, turns and tokens per agent/model/task, as a table."""
    from harbor_hooks.cli.commands import run_traces_stats

    raise typer.Exit(run_traces_stats(path, option_values(options, STATS_FLAGS), plot))


@traces_app.command("push")
@with_options(PUSH_FLAGS)
def traces_push(
    source: Annotated[Path, typer.Argument(help="A local export: .parquet/.jsonl file (or its -success/-failure pair) or a save_to_disk folder.")],
    **options,
) -> None:
    """Push a local export to the Hub without exporting again (e.g. after a failed push)."""
    from harbor_hooks.cli.commands import run_traces_push

    raise typer.Exit(run_traces_push(source, option_values(options, PUSH_FLAGS)))


@app.command("run")
@with_options(RUN_FLAGS)
def run_cmd(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Job config (YAML or JSON); its export: section holds export settings.")] = None,
    job_dir: Annotated[Optional[Path], typer.Option("--job-dir", help="Fire the hooks on a job that already finished (no run).")] = None,
    runner_cmd: RunnerCmd = None,
    agent: Agent = None,
    model: Model = None,
    log_format: LogFormat = None,
    **options,
) -> None:
    """Run a job (Harbor's API, or --runner-cmd), then fire the hooks; failures are reported at the end."""
    from harbor_hooks.cli.commands import run_job_command

    flags = option_values(options, RUN_FLAGS)
    raise typer.Exit(run_job_command(config, job_dir, runner_cmd, agent, model, flags, log_format))


@sweeps_app.command("run")
@with_options(SWEEPS_FLAGS)
def sweeps_run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Job config (YAML or JSON).")],
    max_sweeps: Annotated[int, typer.Option("--max-sweeps", min=1, help="Most sweeps to run.")] = 3,
    trials_per_task: Annotated[int, typer.Option("--trials-per-task", min=1, help="Trials per task in each sweep.")] = 2,
    hint: Annotated[Optional[str], typer.Option("--hint", help="A hint handed to every agent (agents[].kwargs.hint).")] = None,
    hints_file: Annotated[Optional[Path], typer.Option("--hints-file", help="JSON {task name: hint}: one job per task, each with its hint.")] = None,
    runner_cmd: RunnerCmd = None,
    agent: Agent = None,
    model: Model = None,
    log_format: LogFormat = None,
    **options,
) -> None:
    """Run successive sweeps, dropping the tasks that succeeded; export success/failure splits."""
    from harbor_hooks.cli.commands import run_sweeps_command

    flags = option_values(options, SWEEPS_FLAGS)
    raise typer.Exit(run_sweeps_command(config, max_sweeps, trials_per_task, hint, hints_file,
                                        runner_cmd, agent, model, flags, log_format))


@app.command("plugins")
def plugins_cmd() -> None:
    """List the hook plugins loaded, and where each comes from."""
    from harbor_hooks.hooks.manager import describe_plugins

    for name, origin, hooks in describe_plugins():
        typer.echo(f"{name}\t{origin}\t{', '.join(hooks)}")


def _terminated(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)  # clean up (temporary files, work dir) and exit 143
    try:
        app()
    finally:
        # the process ends here: its last garbage collections need not walk every object of
        # the libraries it loaded (pyarrow, pydantic, typer), 0.03 s; exit frees them all.
        # Files are closed and exit handlers (atexit, weakref.finalize) run all the same.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
