"""Harbor's row schema: one message per turn, reasoning and tool calls as <think>/<tool_call> text."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa

from harbor_hooks.formats.arrow import MESSAGE, SHAREGPT_MESSAGE, TEXT
from harbor_hooks.formats.text import dumps
from harbor_hooks.options import ExportOptions
from harbor_hooks.readers.trace import Conversation, Turn

SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def assistant_text(turn: Turn) -> str:
    parts = []
    if turn.reasoning:
        parts.append(f"<think>{turn.reasoning}</think>")
    message = turn.text
    if message:
        # vLLM returns generated tokens only: a reply may close a <think> it never opened
        if "</think>" in message and "<think>" not in message:
            message = "<think>" + message
        parts.append(message)
    for call in turn.tool_calls:
        payload = dumps({"name": call.name, "arguments": call.arguments})
        parts.append(f"<tool_call>\n{payload}\n</tool_call>")
    return "\n".join(parts)


def render(turns: list[Turn], conversation: Conversation, opts: ExportOptions,
           counts: Counter) -> list[list[dict[str, Any]]]:
    """One message per turn, as Harbor renders it."""
    tools = conversation.tool_definitions
    out = []
    for turn in turns:
        if turn.role == "assistant":
            out.append([{"role": "assistant", "content": assistant_text(turn)}])
            continue
        text = turn.text
        if turn.tools_prefix and tools and opts.embed_tools:
            text = f"<tools>\n{json.dumps(tools, ensure_ascii=False, indent=2)}\n</tools>\n\n{text}"
        out.append([{"role": turn.harbor_role, "content": text}])
    return out


def sharegpt(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"from": SHAREGPT_ROLES.get(m["role"], m["role"]), "value": m["content"]} for m in messages]


def tools_column(tools: list[Any]) -> str:
    return dumps(tools)


def columns(messages: list[dict[str, Any]], tools_json: str | None, opts: ExportOptions,
            counts: Counter) -> dict[str, Any]:
    row = {"conversations": messages, "tool_definitions": tools_json}
    if opts.sharegpt:
        row["conversations_sharegpt"] = sharegpt(messages)
    return row


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    """(columns before the metadata, right after it, and last)."""
    last = [("conversations_sharegpt", pa.list_(SHAREGPT_MESSAGE))] if opts.sharegpt else []
    return [("conversations", pa.list_(MESSAGE))], [("tool_definitions", TEXT)], last
