"""Parquet and JSONL files written from shards, as an export runs.

Every file output is written under a temporary name and renamed into place, so
an interrupted export never leaves a file that looks complete.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import ExitStack, contextmanager

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from harbor_hooks.targets import output_kind

ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 64 << 20


def iter_batches(paths: list[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                yield batch


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary sibling of path, renamed onto it when the block succeeds."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            old = tmp + ".old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)


class _ParquetFile:
    """A Parquet file written batch by batch. Row groups are cut by the row count and size
    of the row sequence alone: the same rows give the same bytes however they come."""

    def __init__(self, path: str, schema: pa.Schema):
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.pending: list[pa.RecordBatch] = []
        self.rows = self.size = 0

    def add(self, batch: pa.RecordBatch) -> None:
        start = 0
        while start < batch.num_rows:
            take = min(batch.num_rows - start, ROW_GROUP_ROWS - self.rows)
            piece = batch.slice(start, take)
            self.pending.append(piece)
            self.rows += take
            self.size += piece.nbytes
            start += take
            if self.rows >= ROW_GROUP_ROWS or self.size >= ROW_GROUP_BYTES:
                self._write_group()

    def _write_group(self) -> None:
        self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema),
                                row_group_size=self.rows)
        self.pending, self.rows, self.size = [], 0, 0

    def close(self, complete: bool) -> None:
        if complete and self.pending:
            self._write_group()
        self.writer.close()


def _json_default(value: object) -> str:
    if isinstance(value, bytes):  # --images keep: image bytes as base64 text
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(typ: pa.DataType) -> Callable[[Any], Any] | None:
    """How a value of typ becomes plain JSON, or None when it already is: a JSON column's
    text written as the JSON it holds, and an object inside a list (a message, a tool
    call) without its null keys."""
    if isinstance(typ, pa.JsonType):
        return lambda v: v if v is None else orjson.Fragment(v)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _plain(typ.value_type) if not pa.types.is_struct(typ.value_type) else _object(typ.value_type)
        return None if inner is None else lambda v: v if v is None else [inner(x) for x in v]
    if pa.types.is_struct(typ):
        fields = {f.name: conv for f in typ if (conv := _plain(f.type)) is not None}
        return (lambda v: v if v is None else {k: fields[k](x) if k in fields else x for k, x in v.items()}) \
            if fields else None
    return None


def _object(typ: pa.StructType) -> Callable[[Any], Any]:
    fields = {f.name: conv for f in typ if (conv := _plain(f.type)) is not None}
    if not fields:  # only null keys to drop: an object that has none is kept as it is
        return lambda v: v if v is None or None not in v.values() else {k: x for k, x in v.items() if x is not None}
    return lambda v: v if v is None else {k: fields[k](x) if k in fields else x for k, x in v.items()
                                          if x is not None}


class _JsonlFile:
    def __init__(self, path: str, schema: pa.Schema | None):
        self.fh = open(path, "wb")
        self.columns: dict[str, Callable[[Any], Any]] = {} if schema is None else \
            {f.name: conv for f in schema if (conv := _plain(f.type)) is not None}

    def add(self, batch: pa.RecordBatch) -> None:
        for row in batch.to_pylist():
            for name, conv in self.columns.items():
                if name in row:
                    row[name] = conv(row[name])
            self.fh.write(orjson.dumps(row, default=_json_default))
            self.fh.write(b"\n")

    def close(self, complete: bool) -> None:
        self.fh.close()


FILE_KINDS = {"parquet": _ParquetFile, "jsonl": _JsonlFile}


@contextmanager
def output_files(target: str, schema: pa.Schema | None, splits: list[str],
                 kind: str | None = None) -> Iterator[Callable[[dict[str, str]], None]]:
    """The files of `--output FILE`, one per split (split_target), written while an export
    runs: yields add(shards), which appends the rows of a task's shards (path by split) to
    their splits' files. When the block succeeds each file replaces its target; when it
    fails, none does."""
    make = FILE_KINDS[kind or output_kind(target)]
    with ExitStack() as stack:
        files = {}
        for split in splits:
            tmp = stack.enter_context(atomic_path(split_target(target, split, len(splits))))
            files[split] = file = make(tmp, schema)
            # closed before its rename (or removal): exits run last in, first out
            stack.push(lambda exc_type, _exc, _tb, file=file: file.close(exc_type is None))

        def add(shards: dict[str, str]) -> None:
            for split, path in shards.items():
                for batch in iter_batches([path]):
                    files[split].add(batch)

        yield add


def split_target(target: str, split: str, n_splits: int) -> str:
    """`out.parquet` for one split; `out-success.parquet`, `out-failure.parquet` for several."""
    if n_splits == 1 and split == "train":
        return target
    stem, ext = os.path.splitext(target)
    return f"{stem}-{split}{ext}"


def written_files(target: str, splits: list[str]) -> list[str]:
    return [split_target(target, split, len(splits)) for split in splits]
