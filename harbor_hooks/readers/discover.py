"""What a trial is, and where the trials are: the one place that decides both.

A trial is a folder holding an `agent/` folder (Harbor's own rule); a finished trial also
holds its `result.json`. Discovery is one walk with os.scandir, never descending into a
trial; trials under an fsspec URL (--engine ray) are found by the same rule.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from harbor_hooks.report import ExportReport


TRIAL_MARKER = "agent"  # a trial's output folder
FINISHED_MARKER = "result.json"  # written when a trial ends


def is_trial_dir(path: str) -> bool:
    """A trial directory holds an ``agent/`` folder (Harbor's own rule)."""
    return os.path.isdir(os.path.join(path, TRIAL_MARKER))


def is_finished_trial(path: str) -> bool:
    """A trial that ended: its result.json is written (Harbor writes it last)."""
    return os.path.isfile(os.path.join(path, FINISHED_MARKER))


def finished_trials(job_dir: str | os.PathLike) -> list[str]:
    """The names of a job's finished trials, sorted (symlinked folders are not followed)."""
    names, _ = _subdirectories(os.fspath(job_dir))
    return [n for n in names if is_finished_trial(os.path.join(job_dir, n))]


def is_url(path: str) -> bool:
    """An fsspec URL (s3://, gs://, file://), read by the Ray engine."""
    return "://" in path


def iter_trial_urls(root: str, recursive: bool = True) -> Iterator[str]:
    """Trial dirs under an fsspec URL in sorted order, by the same rule as on disk."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(root)
    protocol = root.split("://", 1)[0]
    base = base.rstrip("/")
    found = fs.find(base, withdirs=True, detail=True)
    trials = {path.rstrip("/").rsplit("/", 1)[0] for path, info in found.items()
              if info.get("type") == "directory" and path.rstrip("/").rsplit("/", 1)[-1] == TRIAL_MARKER}
    outer = None
    for trial in sorted(trials, key=lambda t: t.split("/")):  # depth-first in name order, as on disk
        if outer is not None and trial.startswith(outer + "/"):
            continue  # a trial's own folders are not trials
        outer = trial
        if recursive or trial == base:
            yield f"{protocol}://{trial}"


def fetch_trial(trial: str, root: str, data: str) -> str:
    """A local copy of an fsspec trial dir at its place under data (as the trial is under
    root: rows then say the same `source_path` as from a local copy), beside a copy of its
    job's result.json (the job-level stats decide `result`)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(trial)
    path = path.rstrip("/")
    rel = trial[len(root):].strip("/")
    local = os.path.join(data, rel) if rel else data
    job_result = path.rsplit("/", 1)[0] + "/result.json"
    if fs.isfile(job_result):
        os.makedirs(os.path.dirname(local), exist_ok=True)
        fs.get(job_result, os.path.join(os.path.dirname(local), "result.json"))
    fs.get(path + "/", local, recursive=True)
    return local




def trial_stamp(trial_dir: str) -> str | None:
    """What a trial's files are: the path, size and modification time of every file under
    it, and the path of every folder, hashed (None when a folder cannot be listed: the trial
    is read again). A changed, added or removed file or folder changes it (--incremental)."""
    files = []
    pending = [""]
    try:
        while pending:
            rel = pending.pop()
            with os.scandir(trial_dir + "/" + rel if rel else trial_dir) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(rel + entry.name + "/")
                        files.append(rel + entry.name + "/")  # an empty folder counts (an episode)
                    else:
                        st = entry.stat(follow_symlinks=False)
                        files.append(f"{rel}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}")
    except OSError:
        return None
    files.sort()
    return hashlib.blake2b("\n".join(files).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def _report_broken_agent(path: str, report: ExportReport | None) -> None:
    """A folder whose `agent` is there but is no folder (a file, a dangling or looping
    link) looks like a trial that cannot be read: say so rather than pass it by."""
    agent = os.path.join(path, "agent")
    if report is not None and os.path.lexists(agent):
        report.skip("trial", agent, "is not a directory (a trial keeps its output in agent/)")


def _subdirectories(directory: str) -> tuple[list[str], list[str]]:
    """The names of a directory's subdirectories, and of its links to directories, sorted.
    Names only: a job's listing holds one per trial (a DirEntry weighs three times more)."""
    names, links = [], []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if entry.is_symlink():
                    if entry.is_dir():
                        links.append(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
            except OSError:
                continue
    return sorted(names), sorted(links)


def iter_trial_dirs(
    root: str | os.PathLike, recursive: bool = True, report: ExportReport | None = None
) -> Iterator[str]:
    """Trial dirs under root in sorted order; root itself when it is a trial.

    Symlinked directories are not followed (a link loop or a link out of the job
    must not pull in other data); they are reported when a report is given.
    """
    root = os.fspath(root)
    if is_trial_dir(root):
        yield root
        return
    _report_broken_agent(root, report)
    if not recursive:
        return
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            names, links = _subdirectories(current)
        except OSError as exc:
            if report is not None:
                report.skip("file", current, f"cannot list directory ({exc.strerror or exc})")
            continue
        if report is not None:
            for name in links:
                report.skip("file", os.path.join(current, name), "symlinked directory not followed")
        containers = []
        for name in names:
            path = os.path.join(current, name)
            if is_trial_dir(path):
                yield path
            else:
                _report_broken_agent(path, report)
                containers.append(path)
        # depth-first in name order: push reversed so the smallest name is visited first
        stack.extend(reversed(containers))
