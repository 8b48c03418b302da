"""LLaMA-Factory's sharegpt layout: human/gpt/function_call/observation turns, system, tools."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from harbor_hooks.formats import messages as chat
from harbor_hooks.formats.arrow import SHAREGPT_MESSAGE, TEXT
from harbor_hooks.formats.text import dumps
from harbor_hooks.options import ExportOptions

render = chat.render  # rendered as chat messages, then laid out by columns()


def _new_group(side: str) -> dict[str, Any]:
    return {"side": side, "thoughts": [], "texts": [], "calls": [], "tool": False}


def _groups(rest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for m in rest:
        side = "assistant" if m["role"] == "assistant" else "user"
        if not groups or groups[-1]["side"] != side:
            groups.append(_new_group(side))
        group = groups[-1]
        if m.get("reasoning_content"):
            group["thoughts"].append(m["reasoning_content"])
        if m["content"]:
            group["texts"].append(m["content"])
        group["calls"] += [{"name": c["function"]["name"],
                            "arguments": json.loads(c["function"]["arguments"])}
                           for c in m.get("tool_calls") or []]
        group["tool"] = group["tool"] or m["role"] == "tool"
    if groups and groups[0]["side"] == "assistant":
        groups.insert(0, _new_group("user"))
    while groups and groups[-1]["side"] == "user":  # a sample ends on an assistant turn
        groups.pop()
    return groups


def conversations(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], str | None]:
    """(conversations, system) in LLaMA-Factory's layout: human/observation at odd places,
    gpt/function_call at even ones; neighbours of one side are merged so nothing is lost.
    Reasoning and the text beside a tool call go in a <think> block, which LLaMA-Factory's
    function formatter strips before parsing the call JSON."""
    system = None
    rest = messages
    if rest and rest[0]["role"] == "system":
        system, rest = rest[0]["content"], rest[1:]
    out = []
    for group in _groups(rest):
        text = "\n\n".join(group["texts"])
        if group["side"] == "user":
            out.append({"from": "observation" if group["tool"] else "human", "value": text})
            continue
        thoughts = group["thoughts"] + (group["texts"] if group["calls"] else [])
        think = "<think>\n" + "\n\n".join(thoughts) + "\n</think>\n\n" if thoughts else ""
        if group["calls"]:
            calls = group["calls"][0] if len(group["calls"]) == 1 else group["calls"]
            out.append({"from": "function_call", "value": think + dumps(calls)})
        else:
            out.append({"from": "gpt", "value": think + text})
    return out, system


def columns(messages: list[dict[str, Any]], tools_json: str | None, opts: ExportOptions) -> dict[str, Any]:
    turns, system = conversations(messages)
    return {"conversations": turns, "system": system, "tools": tools_json}


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    return [("conversations", pa.list_(SHAREGPT_MESSAGE)), ("system", TEXT), ("tools", TEXT)], [], []
