"""Datasets from shards: a memory-mapped Dataset (or DatasetDict), a save_to_disk folder, and
a local export loaded back for a push."""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from harbor_hooks.targets import output_kind
from harbor_hooks.outputs.files import atomic_path, output_files, written_files
from harbor_hooks.outputs.guard import write_marker
from harbor_hooks.pipeline.shards import ExportResult

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict


def to_dataset(result: ExportResult) -> "Dataset | DatasetDict":
    """A Dataset memory-mapped from the shards (a DatasetDict when the export has splits)."""
    from datasets import DatasetDict

    if result.split_by is None and list(result.shards) == ["train"]:
        dataset = _split_dataset(result.shards["train"], result.schema)
    else:
        dataset = DatasetDict({name: _split_dataset(paths, result.schema)
                               for name, paths in result.shards.items()})
    # the shards back the dataset's memory maps: remove them when it is collected
    weakref.finalize(dataset, shutil.rmtree, result.workdir, True)
    return dataset


def _split_dataset(paths: list[str], schema: pa.Schema) -> "Dataset":
    from datasets import Dataset, concatenate_datasets

    if not paths:
        return Dataset(pa.Table.from_batches([], schema=schema))
    parts = [Dataset.from_file(path) for path in paths]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def write_output(result: ExportResult, target: str) -> list[str]:
    """Write the export to target (a path, or an fsspec URL for a folder); return the paths written."""
    kind = output_kind(target)
    if kind == "dir":
        dataset = to_dataset(result)
        if "://" in target:  # datasets writes to fsspec URLs itself
            dataset.save_to_disk(target)
            return [target]
        with atomic_path(target) as tmp:
            dataset.save_to_disk(tmp)
            write_marker(tmp, result.report.rows)
        return [target]
    with output_files(target, result.schema, list(result.shards), kind) as add:
        for split, paths in result.shards.items():
            for path in paths:
                add({split: path})
    return written_files(target, list(result.shards))


def load_local_export(source: str | os.PathLike) -> Any:
    """A local export (.parquet/.jsonl file, its -success/-failure pair, or a folder) as a
    Dataset or DatasetDict; FileNotFoundError when there is none."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    source = Path(source)
    if source.is_dir():
        shards = sorted(source.glob("*.parquet"))
        if shards and not (source / "dataset_info.json").exists() and not (source / "dataset_dict.json").exists():
            return load_dataset("parquet", data_files=[os.fspath(p) for p in shards], split="train")
        return load_from_disk(os.fspath(source))
    kind = "parquet" if source.suffix == ".parquet" else "json"
    siblings = {s: source.with_name(f"{source.stem}-{s}{source.suffix}") for s in ("success", "failure")}
    if not source.exists() and all(p.exists() for p in siblings.values()):
        return DatasetDict({s: load_dataset(kind, data_files=os.fspath(p), split="train")
                            for s, p in siblings.items()})
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such export")
    return load_dataset(kind, data_files=os.fspath(source), split="train")
