"""The hooks harbor_hooks calls; their argument names are the public contract."""

from __future__ import annotations

import pluggy

PROJECT = "harbor_hooks"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def on_trial_complete(trial_dir, settings):
    """One trial finished: its directory (with result.json) and the HooksSettings."""


@hookspec
def on_job_complete(job_dir, settings):
    """A job finished: its directory and the HooksSettings."""


@hookspec
def on_sweep_complete(job_dirs, settings):
    """A sweep finished: every sweep's job directory, in order, and the HooksSettings."""
