"""`harbor-hooks`: thin typer commands over the modules that do the work.

Exit codes: 0 done (skipped inputs are reported, not errors); 1 the export or a
push failed; 2 bad usage or settings; with `run` and `sweeps run`, the job's own
non-zero exit code wins, and 3 means the job succeeded but a hook failed.
"""

# No `from __future__ import annotations` here: typer reads every command's annotations
# twice as it builds the CLI, and as strings each is evaluated anew (0.04 s of start-up)

import gc
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from harbor_hooks import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Turn Harbor agent runs into SFT datasets, by hand or when jobs complete.")
traces_app = typer.Typer(no_args_is_help=True, help="Export and inspect traces.")
sweeps_app = typer.Typer(no_args_is_help=True, help="Run successive sweeps and export their splits.")
app.add_typer(traces_app, name="traces")
app.add_typer(sweeps_app, name="sweeps")



def _version(value: bool) -> None:
    if value:
        print(f"harbor-hooks {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


def usage_error(message: str) -> None:
    from harbor_hooks.commands import EXIT_USAGE

    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def sample_job_path() -> Path:
    return Path(__file__).parent / "samples" / "sample-job"


# options shared by `traces export` (plain names) and `run` (--export-* names)
def export_flags(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


@traces_app.command("export")
def traces_export(
    path: Annotated[Optional[str], typer.Option("--path", "-p", help="A trial dir, or a root holding trials (a job, a jobs dir; with --engine ray also an fsspec URL).")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Export the sample job bundled with harbor-hooks.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Search for trials under --path.")] = True,
    episodes: Annotated[Optional[str], typer.Option("--episodes", help="all | last: every episode, or the last complete one per trial.")] = None,
    filter: Annotated[Optional[str], typer.Option("--filter", help="success | failure | all (reward > 0 is a success).")] = None,
    sharegpt: Annotated[Optional[bool], typer.Option("--sharegpt/--no-sharegpt", help="Add a conversations_sharegpt column.")] = None,
    subagents: Annotated[Optional[bool], typer.Option("--subagents/--no-subagents", help="Export subagent trajectories as rows of their own.")] = None,
    instruction_metadata: Annotated[Optional[bool], typer.Option("--instruction-metadata/--no-instruction-metadata", help="Add the task instruction column.")] = None,
    verifier_metadata: Annotated[Optional[bool], typer.Option("--verifier-metadata/--no-verifier-metadata", help="Add the verifier stdout+stderr column.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to .parquet, .jsonl, or a directory (save_to_disk).")] = None,
    splits: Annotated[bool, typer.Option("--splits", help="A DatasetDict with success and failure splits.")] = False,
    push: Annotated[Optional[bool], typer.Option("--push/--no-push", help="Push to the Hugging Face Hub.")] = None,
    repo: Annotated[Optional[str], typer.Option("--repo", help="Hub dataset repo ORG/NAME for --push.")] = None,
    separate: Annotated[Optional[bool], typer.Option("--separate", help="Push successes and failures to two repos.")] = None,
    repo_success: Annotated[Optional[str], typer.Option("--repo-success", help="Repo for successes with --separate.")] = None,
    repo_failure: Annotated[Optional[str], typer.Option("--repo-failure", help="Repo for failures with --separate.")] = None,
    private: Annotated[Optional[bool], typer.Option("--private/--public", help="Visibility of a repo that --push creates.")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Branch to push to (created when missing).")] = None,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message", help="Message of the push commit.")] = None,
    max_shard_size: Annotated[Optional[str], typer.Option("--max-shard-size", help="Largest Parquet shard pushed, e.g. 500MB.")] = None,
    append: Annotated[Optional[bool], typer.Option("--append", help="Add to the rows already in the repo instead of replacing them.")] = None,
    token: Annotated[Optional[str], typer.Option("--token", help="Hub token (else HF_TOKEN, else `hf auth login`).")] = None,
    redact: Annotated[Optional[bool], typer.Option("--redact/--no-redact", help="Replace secrets (API keys, tokens, private keys) in rows.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Worker processes (default: the machine's cores).")] = None,
    engine: Annotated[Optional[str], typer.Option("--engine", help="local (worker processes) | ray (Ray Data on a cluster; --output is a Parquet folder or URL).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Join this Ray cluster (else a local one with --workers CPUs).")] = None,
    max_file_bytes: Annotated[Optional[int], typer.Option("--max-file-bytes", help="Skip (and count) trial files larger than this, unread. Default 64 MiB.")] = None,
    max_message_bytes: Annotated[Optional[int], typer.Option("--max-message-bytes", help="Skip (and count) the file or episode holding a longer message. Default 16 MiB.")] = None,
    max_rows_per_trial: Annotated[Optional[int], typer.Option("--max-rows-per-trial", help="Keep at most this many episode rows per trial (counted). Default 1000.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write every skipped trial/episode/file with its reason to this JSON file.")] = None,
    schema: Annotated[Optional[str], typer.Option("--schema", help="harbor (Harbor's rows) | messages (OpenAI/TRL, structured tool calls) | llamafactory (LLaMA-Factory sharegpt).")] = None,
    rows: Annotated[Optional[str], typer.Option("--rows", help="episode (one row per episode prefix, Harbor's) | trajectory (one row per whole conversation).")] = None,
    reasoning: Annotated[Optional[str], typer.Option("--reasoning", help="messages schema: field (reasoning_content) | inline (<think> tags in content).")] = None,
    min_reward: Annotated[Optional[float], typer.Option("--min-reward", help="Keep trials whose reward is at least this.")] = None,
    max_turns: Annotated[Optional[int], typer.Option("--max-turns", help="Drop rows with more assistant turns.")] = None,
    max_chars: Annotated[Optional[int], typer.Option("--max-chars", help="Drop rows with more characters of conversation.")] = None,
    agent: Annotated[Optional[list[str]], typer.Option("--agent", help="Keep trials of this agent (glob; repeatable).")] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", help="Keep rows of this model (glob; repeatable).")] = None,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="Keep trials of matching tasks (glob; repeatable).")] = None,
    exclude_exceptions: Annotated[Optional[bool], typer.Option("--exclude-exceptions", help="Drop trials that ended in an exception.")] = None,
    dedupe: Annotated[Optional[bool], typer.Option("--dedupe", help="Drop rows whose conversation repeats an earlier row's (counted).")] = None,
    images: Annotated[Optional[str], typer.Option("--images", help="placeholder (text, counted) | keep (an images column of datasets.Image).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose/--no-verbose", help="List every skipped item.")] = False,
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="console | json")] = None,
) -> None:
    """Export Harbor trials to an SFT dataset: prints the rows produced and what was skipped."""
    from harbor_hooks.commands import run_traces_export

    if sample:
        path = str(sample_job_path())
    if path is None:
        usage_error("give --path PATH (a trial or a folder of trials), or --sample")
    flags = export_flags(
        episodes=episodes, filter=filter, sharegpt=sharegpt, subagents=subagents,
        instruction_metadata=instruction_metadata, verifier_metadata=verifier_metadata,
        output=output, push=push, repo=repo, separate=separate, repo_success=repo_success,
        repo_failure=repo_failure, private=private, revision=revision,
        commit_message=commit_message, max_shard_size=max_shard_size, append=append,
        token=token, redact=redact, workers=workers, report=report, log_format=log_format,
        max_file_bytes=max_file_bytes, max_message_bytes=max_message_bytes,
        max_rows_per_trial=max_rows_per_trial, engine=engine, ray_address=ray_address, schema=schema, rows=rows, reasoning=reasoning,
        min_reward=min_reward, max_turns=max_turns, max_chars=max_chars, agent_filter=agent,
        model_filter=model, task_filter=task, exclude_exceptions=exclude_exceptions, dedupe=dedupe,
        images=images,
    )
    code = run_traces_export(path, flags, recursive=recursive, splits=splits, verbose=verbose)
    raise typer.Exit(code)


@traces_app.command("stats")
def traces_stats(
    path: Annotated[Path, typer.Argument(help="A trial dir, or a root holding trials.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write reward, turns and length distributions to this PNG.")] = None,
    filter: Annotated[Optional[str], typer.Option("--filter", help="success | failure | all")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Worker processes.")] = None,
) -> None:
    """Trials, rows, success rate, turns and tokens per agent/model/task, as a table."""
    from harbor_hooks.commands import run_traces_stats, settings_or_exit

    settings = settings_or_exit(None, filter=filter, workers=workers, redact=False)
    raise typer.Exit(run_traces_stats(path, settings, plot))


@traces_app.command("push")
def traces_push(
    source: Annotated[Path, typer.Argument(help="A local export: .parquet/.jsonl file (or its -success/-failure pair) or a save_to_disk folder.")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="Hub dataset repo ORG/NAME.")] = None,
    private: Annotated[Optional[bool], typer.Option("--private/--public")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision")] = None,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message")] = None,
    max_shard_size: Annotated[Optional[str], typer.Option("--max-shard-size")] = None,
    append: Annotated[Optional[bool], typer.Option("--append")] = None,
    token: Annotated[Optional[str], typer.Option("--token")] = None,
) -> None:
    """Push a local export to the Hub without exporting again (e.g. after a failed push)."""
    from harbor_hooks.commands import run_traces_push, settings_or_exit

    settings = settings_or_exit(None, repo=repo, private=private, revision=revision,
                                commit_message=commit_message, max_shard_size=max_shard_size,
                                append=append, token=token)
    raise typer.Exit(run_traces_push(source, settings))


@app.command("run")
def run_cmd(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Job config (YAML or JSON); its export: section holds export settings.")] = None,
    job_dir: Annotated[Optional[Path], typer.Option("--job-dir", help="Fire the hooks on a job that already finished (no run).")] = None,
    runner_cmd: Annotated[Optional[str], typer.Option("--runner-cmd", help="Command that runs the job; {config} is replaced by the config path.")] = None,
    agent: Annotated[Optional[str], typer.Option("--agent", "-a", help="Agent name, handed to the runner.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name, handed to the runner.")] = None,
    export_traces: Annotated[Optional[bool], typer.Option("--export-traces/--no-export-traces", help="Export traces when the job completes.")] = None,
    export_sharegpt: Annotated[Optional[bool], typer.Option("--export-sharegpt/--no-export-sharegpt")] = None,
    export_episodes: Annotated[Optional[str], typer.Option("--export-episodes", help="all | last")] = None,
    export_filter: Annotated[Optional[str], typer.Option("--export-filter", help="success | failure | all")] = None,
    export_subagents: Annotated[Optional[bool], typer.Option("--export-subagents/--no-export-subagents")] = None,
    export_instruction_metadata: Annotated[Optional[bool], typer.Option("--export-instruction-metadata/--no-export-instruction-metadata")] = None,
    export_verifier_metadata: Annotated[Optional[bool], typer.Option("--export-verifier-metadata/--no-export-verifier-metadata")] = None,
    export_output: Annotated[Optional[Path], typer.Option("--export-output", help="Write the export to .parquet, .jsonl or a directory.")] = None,
    export_report: Annotated[Optional[Path], typer.Option("--export-report", help="Write the skip report (JSON).")] = None,
    export_push: Annotated[Optional[bool], typer.Option("--export-push/--no-export-push", help="Push the export to the Hub.")] = None,
    export_repo: Annotated[Optional[str], typer.Option("--export-repo", help="Hub dataset repo ORG/NAME.")] = None,
    export_private: Annotated[Optional[bool], typer.Option("--export-private/--export-public")] = None,
    export_revision: Annotated[Optional[str], typer.Option("--export-revision")] = None,
    export_commit_message: Annotated[Optional[str], typer.Option("--export-commit-message")] = None,
    export_max_shard_size: Annotated[Optional[str], typer.Option("--export-max-shard-size")] = None,
    export_append: Annotated[Optional[bool], typer.Option("--export-append")] = None,
    export_token: Annotated[Optional[str], typer.Option("--export-token")] = None,
    export_redact: Annotated[Optional[bool], typer.Option("--export-redact/--export-no-redact")] = None,
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="console | json")] = None,
) -> None:
    """Run a job (Harbor's API, or --runner-cmd), then fire the hooks; failures are reported at the end."""
    from harbor_hooks.commands import run_job_command

    flags = export_flags(
        traces=export_traces, sharegpt=export_sharegpt, episodes=export_episodes,
        filter=export_filter, subagents=export_subagents,
        instruction_metadata=export_instruction_metadata,
        verifier_metadata=export_verifier_metadata, output=export_output, report=export_report,
        push=export_push, repo=export_repo, private=export_private, revision=export_revision,
        commit_message=export_commit_message, max_shard_size=export_max_shard_size,
        append=export_append, token=export_token, redact=export_redact, log_format=log_format,
    )
    raise typer.Exit(run_job_command(config, job_dir, runner_cmd, agent, model, flags))


@sweeps_app.command("run")
def sweeps_run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Job config (YAML or JSON).")],
    max_sweeps: Annotated[int, typer.Option("--max-sweeps", min=1, help="Most sweeps to run.")] = 3,
    trials_per_task: Annotated[int, typer.Option("--trials-per-task", min=1, help="Trials per task in each sweep.")] = 2,
    hint: Annotated[Optional[str], typer.Option("--hint", help="A hint handed to every agent (agents[].kwargs.hint).")] = None,
    hints_file: Annotated[Optional[Path], typer.Option("--hints-file", help="JSON {task name: hint}: one job per task, each with its hint.")] = None,
    push: Annotated[Optional[bool], typer.Option("--push/--no-push", help="Push the success/failure splits.")] = None,
    export_repo: Annotated[Optional[str], typer.Option("--export-repo", help="Repo for one DatasetDict with success/failure splits.")] = None,
    export_splits: Annotated[Optional[bool], typer.Option("--export-splits/--export-separate", "--export-splits/--no-export-splits", help="One repo with splits, or two repos.")] = None,
    export_repo_success: Annotated[Optional[str], typer.Option("--export-repo-success")] = None,
    export_repo_failure: Annotated[Optional[str], typer.Option("--export-repo-failure")] = None,
    export_output: Annotated[Optional[Path], typer.Option("--export-output", help="Write the splits here (.parquet/.jsonl pair, or a DatasetDict folder).")] = None,
    export_episodes: Annotated[Optional[str], typer.Option("--export-episodes", help="all | last (default last)")] = None,
    export_sharegpt: Annotated[Optional[bool], typer.Option("--export-sharegpt/--no-export-sharegpt")] = None,
    export_private: Annotated[Optional[bool], typer.Option("--export-private/--export-public")] = None,
    export_revision: Annotated[Optional[str], typer.Option("--export-revision")] = None,
    export_token: Annotated[Optional[str], typer.Option("--export-token")] = None,
    runner_cmd: Annotated[Optional[str], typer.Option("--runner-cmd", help="Command that runs one job; {config} is replaced by its config path.")] = None,
    agent: Annotated[Optional[str], typer.Option("--agent", "-a")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m")] = None,
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="console | json")] = None,
) -> None:
    """Run successive sweeps, dropping the tasks that succeeded; export success/failure splits."""
    from harbor_hooks.commands import run_sweeps_command

    flags = export_flags(
        push=push, repo=export_repo,
        separate=None if export_splits is None else not export_splits,
        repo_success=export_repo_success, repo_failure=export_repo_failure, output=export_output,
        episodes=export_episodes, sharegpt=export_sharegpt, private=export_private,
        revision=export_revision, token=export_token, log_format=log_format,
    )
    raise typer.Exit(run_sweeps_command(config, max_sweeps, trials_per_task, hint, hints_file,
                                        runner_cmd, agent, model, flags))


@app.command("plugins")
def plugins_cmd() -> None:
    """List the hook plugins loaded, and where each comes from."""
    from harbor_hooks.plugins import describe_plugins

    for name, origin, hooks in describe_plugins():
        print(f"{name}\t{origin}\t{', '.join(hooks)}")


def main() -> None:
    try:
        app()
    finally:
        # the process ends here: its last garbage collections need not walk every object of
        # the libraries it loaded (pyarrow, pydantic, typer), 0.03 s; exit frees them all.
        # Files are closed and exit handlers (atexit, weakref.finalize) run all the same.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
