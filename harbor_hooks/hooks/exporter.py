"""The built-in exporter plugin, registered like any third-party plugin."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from harbor_hooks.errors import HarborHooksError, UsageError
from harbor_hooks.hooks.specs import hookimpl
from harbor_hooks.log import get_logger
from harbor_hooks.outputs.guard import TRACES_FOLDER
from harbor_hooks.pipeline.store import TrialStream, store_of
from harbor_hooks.publish import Outcome, publish, split_by_of
from harbor_hooks.settings import HooksSettings


class ExporterPlugin:
    """Exports (and pushes) a finished job; a sweep's jobs as success/failure splits. With
    `stream` (the default), each trial is exported as it finishes, into the job's store."""

    def __init__(self) -> None:
        self._streams: dict[str, TrialStream | None] = {}  # job dir -> its store (None: failed)
        self._lock = threading.Lock()  # Harbor ends trials in threads of its own

    @hookimpl
    def on_trial_complete(self, trial_dir, settings: HooksSettings) -> None:
        if not (settings.traces and settings.stream):
            return
        job_dir = os.path.dirname(os.path.abspath(trial_dir))
        with self._lock:
            if job_dir in self._streams and self._streams[job_dir] is None:
                return  # streaming failed for this job: its end exports in full
            try:
                stream = self._streams.get(job_dir)
                if stream is None:
                    stream = self._streams[job_dir] = TrialStream(
                        job_store(job_dir, settings), settings.export_options(),
                        split_by_of(settings.export_options(), settings.push_options()), job_dir)
                stream.add(os.fspath(trial_dir))
            except (OSError, HarborHooksError) as exc:  # the job-end export says it again, once
                self._streams[job_dir] = None
                get_logger().warning("streaming stopped for this job: the export at its end reads "
                                     f"every trial ({type(exc).__name__}: {exc})", job_dir=job_dir)

    @hookimpl
    def on_job_complete(self, job_dir, settings: HooksSettings) -> None:
        job_dir = os.path.abspath(job_dir)  # as the trials streamed were named: the same root
        with self._lock:
            stream = self._streams.pop(job_dir, None)
            if stream is not None:
                try:
                    stream.close()
                except OSError as exc:  # its last segment is read again from the trials
                    get_logger().warning(f"the trial stream could not be closed: {exc}", job_dir=job_dir)
        if not settings.traces:
            return
        log = get_logger()
        log.info("exporting traces", job_dir=job_dir)
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
        store = job_store(job_dir, settings)  # used when streamed into (by this or a killed run)
        if not (settings.stream or output.incremental or os.path.isdir(store)):
            store = None
        outcome = publish(job_dir, settings.export_options(), output, settings.push_options(),
                          log=lambda line: log.info(line), store=store)
        _log_outcome(outcome, job_dir)

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


def job_store(job_dir: str | os.PathLike, settings: HooksSettings) -> str:
    """A job's store: beside --export-output (a local one), else in the job's traces folder."""
    if settings.output is not None and "://" not in os.fspath(settings.output):
        return store_of(settings.output)
    return os.path.join(os.fspath(job_dir), TRACES_FOLDER, "traces.parquet.incremental")


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
