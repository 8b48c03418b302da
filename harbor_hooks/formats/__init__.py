"""Row schemas: one module per schema, and this registry (name -> renderer, columns, Arrow fields).

The names are ExportOptions.schema's allowed values; tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pyarrow as pa

from harbor_hooks.formats import harbor, llamafactory, messages
from harbor_hooks.formats.arrow import IMAGE, META_FIELDS, TEXT, with_image_features
from harbor_hooks.options import ExportOptions


@dataclass(frozen=True)
class Format:
    render: Callable[..., list[list[dict[str, Any]]]]  # turns -> the messages of each turn
    columns: Callable[..., dict[str, Any]]  # (messages, tools JSON, options) -> the schema's columns
    arrow_fields: Callable[[ExportOptions], tuple[list, list, list]]  # before, after the metadata, last


def _format(module: ModuleType) -> Format:
    return Format(module.render, module.columns, module.arrow_fields)


FORMATS: dict[str, Format] = {"harbor": _format(harbor), "messages": _format(messages),
                              "llamafactory": _format(llamafactory)}


def row_schema(opts: ExportOptions) -> pa.Schema:
    """The Arrow schema of the rows an export with these options writes."""
    head, after, last = FORMATS[opts.schema].arrow_fields(opts)
    fields = head + META_FIELDS + after
    if opts.instruction_metadata:
        fields.append(("instruction", TEXT))
    if opts.verifier_metadata:
        fields.append(("verifier_output", TEXT))
    fields += last
    if opts.images == "keep":
        return with_image_features(pa.schema(fields + [("images", pa.list_(IMAGE))]))
    return pa.schema(fields)
