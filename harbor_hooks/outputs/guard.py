"""What an export may write over: never what harbor-hooks did not write.

A folder output holds a marker file, written with every export; an existing folder is
replaced only when it holds one. An existing file is replaced only when it is an export
of ours (Parquet or JSONL rows with our columns, or our report) or empty. --overwrite
replaces anyway. An output is never inside the trials it exports, nor over them.
"""

from __future__ import annotations

import json
import os

from harbor_hooks.errors import UsageError
from harbor_hooks.options import OutputOptions
from harbor_hooks.version import __version__

MARKER = ".harbor-hooks-export"


def write_marker(folder: str, rows: int) -> None:
    with open(os.path.join(folder, MARKER), "w") as fh:
        fh.write(f'{{"harbor_hooks": "{__version__}", "rows": {rows}}}\n')


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


TRACES_FOLDER = "traces"  # <job_dir>/traces/: holds no trial, so it may sit inside the job


def check_targets(output: OutputOptions, targets: list[str], roots: list[str]) -> None:
    """Refuse (UsageError, before any work) to write where the export would destroy data:
    inside or over the trials exported, or over a folder or file harbor-hooks did not write."""
    real_roots = [os.path.realpath(r) for r in roots if "://" not in r]
    for target in [*targets, *([os.fspath(output.report)] if output.report is not None else [])]:
        if "://" in target:
            continue
        real = os.path.realpath(target)
        for root in real_roots:
            if os.path.dirname(real) == os.path.join(root, TRACES_FOLDER):
                continue  # the job's own traces/ folder (run --export-traces writes there by default)
            if _inside(real, root) or _inside(root, real):
                where = "inside" if _inside(real, root) else "over"
                raise UsageError(f"{target}: the output would be written {where} the trials it "
                                 f"exports ({root}); write it elsewhere")
    reports = [os.fspath(output.report)] if output.report is not None else []
    for target in [*targets, *reports]:
        if "://" in target or not os.path.lexists(target):
            continue
        kind = "report" if target in reports else output.kind
        if kind != "dir" and os.path.isdir(target) and not os.path.islink(target):
            raise UsageError(f"{target}: is a folder, not a {kind} file")
        if not output.overwrite and not _ours(target, kind):
            what = "a folder" if os.path.isdir(target) else "a file"
            raise UsageError(f"{target}: {what} that holds no harbor-hooks export; pass --overwrite to replace it")


def _ours(path: str, kind: str | None) -> bool:
    """Whether path holds something harbor-hooks wrote (or nothing at all)."""
    if kind == "dir":
        return os.path.isfile(os.path.join(path, MARKER))
    try:
        if os.path.getsize(path) == 0:
            return True
        if kind == "parquet":
            import pyarrow.parquet as pq
            return {"trial_name", "trace_source"} <= set(pq.read_schema(path).names)
        with open(path, "rb") as fh:
            first = json.loads(fh.readline(1 << 20) if kind == "jsonl" else fh.read())
        keys = ("trial_name", "trace_source") if kind == "jsonl" else ("trials_found", "skipped")
        if kind == "jsonl" and isinstance(first, dict) and "resourceSpans" in first:  # --format otel
            return "harbor-hooks" in json.dumps(first["resourceSpans"][0]["scopeSpans"][0]["scope"])
        return isinstance(first, dict) and all(k in first for k in keys)
    except Exception:  # noqa: BLE001 - unreadable or not what we write: not ours
        return False
