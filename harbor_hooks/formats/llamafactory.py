"""LLaMA-Factory's sharegpt layout: human/gpt/function_call/observation turns, system, tools."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa

from harbor_hooks.formats import messages as chat
from harbor_hooks.formats.arrow import SHAREGPT_TURN, TEXT
from harbor_hooks.formats.text import dumps
from harbor_hooks.options import ExportOptions

render = chat.render  # rendered as chat messages, then laid out by columns()

# how LLaMA-Factory's own converter of OpenAI-style rows joins parallel tool results into
# one observation (its templates wrap an observation in <tool_response> tags)
RESULTS_SEPARATOR = "\n</tool_response>\n<tool_response>\n"


def _groups(rest: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Neighbour messages of one side (the assistant's, or the user's and the tools')."""
    groups: list[list[dict[str, Any]]] = []
    for m in rest:
        side = m["role"] == "assistant"
        if not groups or (groups[-1][0]["role"] == "assistant") != side:
            groups.append([])
        groups[-1].append(m)
    return groups


def _user_turn(group: list[dict[str, Any]], counts: Counter) -> dict[str, Any]:
    """One odd-place turn: tool results alone are one `observation` (each result kept apart
    by LLaMA-Factory's separator); with a user or system message among them, a `human`
    turn (never a user's words inside <tool_response>), the results first, counted."""
    results = [m["content"] for m in group if m["role"] == "tool"]
    if len(results) == len(group):
        return {"from": "observation", "value": RESULTS_SEPARATOR.join(results)}
    if results:
        counts["tool results given in a human turn"] += len(results)
    return {"from": "human", "value": "\n\n".join(m["content"] for m in group if m["content"])}


def _assistant_turn(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One even-place turn: `function_call` when the group calls tools, else `gpt`.
    Reasoning and the text beside a tool call go in a <think> block, which LLaMA-Factory's
    function formatter strips before parsing the call JSON."""
    texts = [m["content"] for m in group if m["content"]]
    calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
             for m in group for c in m.get("tool_calls", ())]
    thoughts = [m["reasoning_content"] for m in group if m.get("reasoning_content")]
    thoughts += texts if calls else []
    think = "<think>\n" + "\n\n".join(thoughts) + "\n</think>\n\n" if thoughts else ""
    train = any(m.get("train") for m in group)
    if calls:
        return {"from": "function_call", "value": think + dumps(calls[0] if len(calls) == 1 else calls),
                "train": train}
    return {"from": "gpt", "value": think + "\n\n".join(texts), "train": train}


def conversations(messages: list[dict[str, Any]], counts: Counter) -> tuple[list[dict[str, Any]], str | None]:
    """(conversations, system) in LLaMA-Factory's layout: human/observation at odd places,
    gpt/function_call at even ones, as its converter demands; only neighbours that must
    share a place are merged. A sample starts with a human turn and ends on the assistant's."""
    system = None
    rest = messages
    if rest and rest[0]["role"] == "system":
        system, rest = rest[0]["content"], rest[1:]
    out = [_assistant_turn(g) if g[0]["role"] == "assistant" else _user_turn(g, counts) for g in _groups(rest)]
    if out and out[0]["from"] in ("gpt", "function_call"):
        out.insert(0, {"from": "human", "value": ""})
    while out and out[-1]["from"] in ("human", "observation"):
        out.pop()
    return out, system


def tools_column(tools: list[Any]) -> str:
    return dumps(tools)  # LLaMA-Factory reads `tools` as JSON text (its tool formatter json.loads it)


def columns(messages: list[dict[str, Any]], tools: str | None, opts: ExportOptions,
            counts: Counter) -> dict[str, Any]:
    turns, system = conversations(chat.trained(messages, opts), counts)
    return {"conversations": turns, "system": system, "tools": tools}


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    return [("conversations", pa.list_(SHAREGPT_TURN)), ("system", TEXT), ("tools", TEXT)], [], []
