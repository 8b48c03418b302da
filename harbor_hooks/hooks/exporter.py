"""The built-in exporter plugin, registered like any third-party plugin."""

from __future__ import annotations

import os
from pathlib import Path

from harbor_hooks.errors import UsageError
from harbor_hooks.hooks.specs import hookimpl
from harbor_hooks.log import get_logger
from harbor_hooks.outputs.guard import TRACES_FOLDER
from harbor_hooks.publish import Outcome, publish
from harbor_hooks.settings import HooksSettings


class ExporterPlugin:
    """Exports (and pushes) a finished job; a sweep's jobs as success/failure splits."""

    @hookimpl
    def on_job_complete(self, job_dir, settings: HooksSettings) -> None:
        if not settings.traces:
            return
        log = get_logger()
        log.info("exporting traces", job_dir=os.fspath(job_dir))
        output = settings.output_options()
        if output.output is None and not settings.push:  # else the export would vanish
            folder = Path(job_dir) / TRACES_FOLDER
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"{folder}: is not a folder, and the traces go there by default: "
                                 "give --export-output PATH")
            folder.mkdir(exist_ok=True)
            output = output.model_copy(update={"output": folder / "traces.parquet",
                                               "report": output.report or folder / "report.json"})
            log.info("no --export-output or --export-push: writing the traces into the job folder",
                     path=os.fspath(folder))
        outcome = publish(job_dir, settings.export_options(), output, settings.push_options(),
                          log=lambda line: log.info(line))
        _log_outcome(outcome, os.fspath(job_dir))

    @hookimpl
    def on_sweep_complete(self, job_dirs, settings: HooksSettings) -> None:
        log = get_logger()
        if not (settings.push or settings.output):
            log.info("sweep export skipped: add --push --export-repo ORG/NAME to push the "
                     "success/failure splits, or --export-output DIR to write them")
            return
        export = settings.export_options().model_copy(update={"splits": True})
        outcome = publish([os.fspath(d) for d in job_dirs], export, settings.output_options(),
                          settings.push_options(), log=lambda line: log.info(line))
        _log_outcome(outcome, ", ".join(os.fspath(d) for d in job_dirs))


def _log_outcome(outcome: Outcome, source: str) -> None:
    log = get_logger()
    report = outcome.report
    log.info("exported traces", rows=report.rows, source=source,
             **({"splits": report.rows_by_split} if report.rows_by_split else {}))
    for line in report.summary_lines()[1:]:
        log.info(line)
    for path in outcome.written:
        log.info("wrote", path=path)
    for message in outcome.messages:
        log.info(message)
