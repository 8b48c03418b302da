"""What an export may write over: never what harbor-hooks did not write.

A folder output holds a marker file, written with every export; an existing folder is
replaced only when it holds one (or with --overwrite). An output is never inside the
trials it exports, nor a folder that holds them.
"""

from __future__ import annotations

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


def check_targets(output: OutputOptions, targets: list[str], roots: list[str]) -> None:
    """Refuse (UsageError, before any work) to write where the export would destroy data:
    inside or over the trials exported, or over a folder harbor-hooks did not write."""
    real_roots = [os.path.realpath(r) for r in roots if "://" not in r]
    for target in [*targets, *([os.fspath(output.report)] if output.report is not None else [])]:
        if "://" in target:
            continue
        real = os.path.realpath(target)
        for root in real_roots:
            if _inside(real, root) or _inside(root, real):
                where = "inside" if _inside(real, root) else "over"
                raise UsageError(f"{target}: the output would be written {where} the trials it "
                                 f"exports ({root}); write it elsewhere")
    for target in targets:
        if "://" in target or not os.path.lexists(target):
            continue
        if output.kind == "dir":
            ours = os.path.isfile(os.path.join(target, MARKER))
            if not ours and not output.overwrite:
                what = "a folder" if os.path.isdir(target) else "a file"
                raise UsageError(f"{target}: {what} that holds no harbor-hooks export; "
                                 "pass --overwrite to replace it")
        elif os.path.isdir(target) and not os.path.islink(target):
            raise UsageError(f"{target}: is a folder, not a {output.kind} file")
