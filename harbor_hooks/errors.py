"""Every error a user can meet, with its exit code: the one table of them (the README copies it).

| exit | meaning |
| --- | --- |
| 0 | done; skipped inputs are reported, not errors |
| 1 | an export or a push failed (ExportFailed, PushError) |
| 2 | bad usage or an invalid setting, before any work (UsageError, SettingsError) |
| 3 | `run` / `sweeps run`: the job succeeded but a hook failed (a job's own non-zero code wins) |
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_HOOKS = 3


class HarborHooksError(Exception):
    """An error with a one-line message for the user and the exit code it ends the command with."""

    exit_code = EXIT_FAILED


class UsageError(HarborHooksError, ValueError):
    """Bad usage: a missing or contradictory argument. Nothing ran."""

    exit_code = EXIT_USAGE


class SettingsError(UsageError):
    """An invalid option; the message names it, and is the same whatever front door set it."""


class RunnerError(UsageError):
    """The job could not be started (no runner, a bad job config)."""


class ExportFailed(HarborHooksError):
    """The export could not be written (a full disk, an unwritable output)."""


class PushError(HarborHooksError):
    """A push that could not be done; the message is one line naming the repo and the reason."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that an export cleans up as for Ctrl-C."""


EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class TraceReadError(Exception):
    """Bad input in one file of a trial: the export skips it, reports it, and goes on.

    The message names the file and the reason, in one line. It never leaves an export.
    """

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
