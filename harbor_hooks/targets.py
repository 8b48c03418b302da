"""What --output names: a kind of file or folder, or an fsspec URL kept whole."""

from __future__ import annotations

import os
from pathlib import Path


class UrlPath(type(Path())):
    """An fsspec URL (s3://bucket/dir/) where a path is taken: the URL as given when it is
    made a string or an os path."""

    def __new__(cls, url: str) -> "UrlPath":
        self = super().__new__(cls, url)
        self._url = url
        return self

    def __fspath__(self) -> str:
        return self._url

    def __str__(self) -> str:
        return self._url


def output_kind(target: str) -> str | None:
    """What --output names: "parquet", "jsonl" (.jsonl or .json), "dir" (save_to_disk: a
    name with no extension, one ending in /, or an existing folder), or None (unknown)."""
    lower = target.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    name = lower.rstrip("/").rsplit("/", 1)[-1]
    if lower.endswith("/") or "." not in name.strip(".") or "://" in target or os.path.isdir(target):
        return "dir"
    return None
