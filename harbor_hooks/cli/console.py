"""What the commands show: results on stdout; skipped items, errors and progress on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from harbor_hooks.report import ExportReport

MAX_SKIP_LINES = 20


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
        out(line)
    shown = report.skips if verbose else report.skips[:MAX_SKIP_LINES]
    for skip in shown:
        err(skip.line())
    if len(report.skips) > len(shown):
        err(f"... and {len(report.skips) - len(shown)} more skipped items "
            "(--verbose lists them all, --report FILE writes them as JSON)")


def print_failures(failures: list[Any]) -> None:
    if not failures:
        return
    err(f"{len(failures)} hook failure(s) during this run:")
    for failure in failures:
        err(f"  {failure.line()}")


def print_stats(groups: list[Any]) -> None:
    from rich.console import Console

    from harbor_hooks.outputs.stats import rich_table

    Console(width=200).print(rich_table(groups))
