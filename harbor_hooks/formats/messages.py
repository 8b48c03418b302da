"""The OpenAI / TRL `messages` schema: assistant tool_calls with ids, `tool` results, a tools column."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from harbor_hooks.formats.arrow import CHAT_MESSAGE, TEXT
from harbor_hooks.formats.text import dumps
from harbor_hooks.options import ExportOptions
from harbor_hooks.readers.trace import Conversation, Turn


def _message(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "reasoning_content": extra.get("reasoning_content"),
            "tool_calls": extra.get("tool_calls"), "tool_call_id": extra.get("tool_call_id")}


def _assistant(index: int, turn: Turn, opts: ExportOptions) -> dict[str, Any]:
    calls = []
    for k, call in enumerate(turn.tool_calls):
        arguments = call.arguments if call.arguments is not None else {}
        calls.append({"id": call.id or f"call_{index}_{k}", "type": "function", "function": {
            "name": call.name or "", "arguments": dumps(arguments)}})
    content, reasoning = turn.text, turn.reasoning
    if reasoning and opts.reasoning == "inline":
        content, reasoning = f"<think>{reasoning}</think>\n{content}", None
    return _message("assistant", content, reasoning_content=reasoning, tool_calls=calls or None)


def render(turns: list[Turn], conversation: Conversation, opts: ExportOptions) -> list[list[dict[str, Any]]]:
    """The messages of each turn: tool calls with ids, each tool result a `tool` message
    answering its call (paired by source_call_id, else by order)."""
    out: list[list[dict[str, Any]]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            message = _assistant(index, turn, opts)
            pending = [c["id"] for c in message["tool_calls"] or ()]
            out.append([message])
        elif turn.role == "tool":
            messages = []
            for k, (call_id, text) in enumerate(turn.results):
                if call_id is None and len(turn.results) == len(pending):
                    call_id = pending[k]
                if call_id is not None and call_id in pending:
                    messages.append(_message("tool", text, tool_call_id=call_id))
                else:  # no call to answer (a terminal agent's screen): the environment speaks
                    messages.append(_message("user", text))
            pending = []
            out.append(messages)
        else:
            out.append([_message(turn.role if turn.role in ("system", "user") else "user", turn.text)])
    return out


def columns(messages: list[dict[str, Any]], tools_json: str | None, opts: ExportOptions) -> dict[str, Any]:
    return {"messages": messages, "tools": tools_json}


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    return [("messages", pa.list_(CHAT_MESSAGE)), ("tools", TEXT)], [], []
