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
    """Import pyarrow without numpy and cloudpickle, for a process that hands pyarrow no
    numpy array and no object only cloudpickle can pickle.

    pyarrow loads both as it loads, when they are installed (since pyarrow 17, numpy is
    optional): numpy only to convert numpy arrays (0.06 s, a third of the CLI's start-up),
    cloudpickle (ray's, among others) to pickle what the stdlib's pickle cannot (0.02 s).
    Once loaded so, pyarrow converts no numpy array in this process: never call this where
    `datasets` (which works through numpy) or a user's code may run."""
    if "pyarrow" not in sys.modules:
        with absent("numpy", "cloudpickle"):
            import pyarrow  # noqa: F401
