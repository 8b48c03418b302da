"""From shards to what the user asked for: a Dataset (memory-mapped), Parquet, JSONL or a folder.

Every file output is written under a temporary name and renamed into place, so
an interrupted export never leaves a file that looks complete.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from harbor_hooks.export import ExportResult
from harbor_hooks.settings import output_kind

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 64 << 20


def iter_batches(paths: list[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                yield batch


def to_dataset(result: ExportResult) -> "Dataset | DatasetDict":
    """A Dataset memory-mapped from the shards (a DatasetDict when the export has splits)."""
    from datasets import DatasetDict

    if result.options.split_by is None:
        dataset = _split_dataset(result.shards["train"], result.schema)
        _keep_workdir_while(dataset, result)
        return dataset
    splits = DatasetDict({name: _split_dataset(paths, result.schema)
                          for name, paths in result.shards.items()})
    _keep_workdir_while(splits, result)
    return splits


def _keep_workdir_while(obj: Any, result: ExportResult) -> None:
    # the shards back the dataset's memory maps: remove them when it is collected
    weakref.finalize(obj, shutil.rmtree, result.workdir, True)


def _split_dataset(paths: list[str], schema: pa.Schema) -> "Dataset":
    from datasets import Dataset, concatenate_datasets

    if not paths:
        return Dataset(pa.Table.from_batches([], schema=schema))
    parts = [Dataset.from_file(path) for path in paths]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


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


def write_parquet(paths: list[str], schema: pa.Schema, target: str) -> None:
    """Row groups cut by row count and size of the row sequence alone: same rows, same bytes."""
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            pending: list[pa.RecordBatch] = []
            rows = size = 0
            for batch in iter_batches(paths):
                start = 0
                while start < batch.num_rows:
                    take = min(batch.num_rows - start, ROW_GROUP_ROWS - rows)
                    piece = batch.slice(start, take)
                    pending.append(piece)
                    rows += take
                    size += piece.nbytes
                    start += take
                    if rows >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
                        writer.write_table(pa.Table.from_batches(pending, schema=schema),
                                           row_group_size=rows)
                        pending, rows, size = [], 0, 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema=schema),
                                   row_group_size=rows)


def _json_default(value: object) -> str:
    if isinstance(value, bytes):  # --images keep: image bytes as base64 text
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_jsonl(paths: list[str], target: str) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        for batch in iter_batches(paths):
            for row in batch.to_pylist():
                fh.write(orjson.dumps(row, default=_json_default))
                fh.write(b"\n")


def split_target(target: str, split: str, n_splits: int) -> str:
    """`out.parquet` for one split; `out-success.parquet`, `out-failure.parquet` for several."""
    if n_splits == 1 and split == "train":
        return target
    stem, ext = os.path.splitext(target)
    return f"{stem}-{split}{ext}"


def write_output(result: ExportResult, target: str) -> list[str]:
    """Write the export to target; return the paths written."""
    kind = output_kind(target)
    if kind == "dir":
        dataset = to_dataset(result)
        with atomic_path(target) as tmp:
            dataset.save_to_disk(tmp)
        return [target]
    written = []
    for split, paths in result.shards.items():
        path = split_target(target, split, len(result.shards))
        if kind == "parquet":
            write_parquet(paths, result.schema, path)
        else:
            write_jsonl(paths, path)
        written.append(path)
    return written
