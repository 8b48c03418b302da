"""Row schemas: one module per schema, and this registry (name -> renderer, columns, Arrow fields).

The names are ExportOptions.schema's allowed values; tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pyarrow as pa

from harbor_hooks.formats import harbor, llamafactory, messages, prompt_completion
from harbor_hooks.formats.arrow import MEDIA, META_FIELDS, TEXT, with_media_features
from harbor_hooks.options import ExportOptions


@dataclass(frozen=True)
class Format:
    render: Callable[..., list[list[dict[str, Any]]]]  # (turns, ..., counts) -> the messages of each turn
    columns: Callable[..., dict[str, Any]]  # (messages, tools column, options, counts) -> the columns
    arrow_fields: Callable[[ExportOptions], tuple[list, list, list]]  # before, after the metadata, last
    tools_column: Callable[[list[Any]], Any]  # a conversation's tool definitions as its column holds them


def _format(module: ModuleType) -> Format:
    return Format(module.render, module.columns, module.arrow_fields, module.tools_column)


FORMATS: dict[str, Format] = {"harbor": _format(harbor), "messages": _format(messages),
                              "llamafactory": _format(llamafactory),
                              "prompt-completion": _format(prompt_completion)}
# the column of each schema that holds a row's conversation (prompt-completion: two)
CONVERSATION_COLUMNS = {"harbor": ("conversations",), "messages": ("messages",),
                        "llamafactory": ("conversations",), "prompt-completion": ("prompt", "completion")}


def row_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a row, in any schema."""
    for names in CONVERSATION_COLUMNS.values():
        if names[0] in row:
            return [m for name in names for m in row[name]]
    return []


def row_schema(opts: ExportOptions) -> pa.Schema:
    """The Arrow schema of the rows an export with these options writes."""
    head, after, last = FORMATS[opts.schema].arrow_fields(opts)
    fields = head + META_FIELDS + after
    if opts.instruction_metadata:
        fields.append(("instruction", TEXT))
    if opts.verifier_metadata:
        fields.append(("verifier_output", TEXT))
    fields += last
    if opts.token_ids:
        fields += [("prompt_token_ids", pa.list_(pa.list_(pa.int64()))),
                   ("completion_token_ids", pa.list_(pa.list_(pa.int64()))),
                   ("logprobs", pa.list_(pa.list_(pa.float64())))]
    if opts.tokenizer is not None:
        fields += [("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())), ("n_tokens", pa.int32())]
    if opts.media == "keep":
        return with_media_features(pa.schema(fields + [("images", pa.list_(MEDIA)), ("audio", pa.list_(MEDIA))]))
    return pa.schema(fields)
