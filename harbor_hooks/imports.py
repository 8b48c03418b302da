"""Loading a library without optional packages it would load at once and we never use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _Absent:
    """A meta path finder for which some top-level packages are not installed."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@contextmanager
def absent(*names: str) -> Iterator[None]:
    """Inside the block, importing these packages fails as if they were not installed
    (unless already imported): a library that treats them as optional loads without them."""
    finder = _Absent(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_pyarrow_alone() -> None:
    """Import pyarrow without numpy, for a process that never hands pyarrow a numpy array.

    pyarrow (17 and later) loads numpy as it loads, when numpy is installed, only to convert
    numpy arrays: that is 0.06 s, a third of the CLI's start-up. Once loaded so, pyarrow
    converts no numpy array in this process: never call this where `datasets` (which
    works through numpy) or a user's code may run."""
    if "pyarrow" not in sys.modules:
        with absent("numpy"):
            import pyarrow  # noqa: F401
