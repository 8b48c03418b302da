"""Rows from a TrialTrace: Harbor's schema (default), OpenAI/TRL `messages`, or LLaMA-Factory.

Each turn is rendered once; an ATIF episode row is a prefix of its conversation,
so its messages are a slice of the conversation's rendered messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harbor_hooks.readers import Conversation, Episode, TrialTrace, Turn
from harbor_hooks.trial import TrialMeta

SCHEMAS = ("harbor", "messages", "llamafactory")
# json.dumps(value, ensure_ascii=False) without building an encoder per call; values parsed
# from JSON cannot be circular, so the check (a dict of ids per call) is skipped
dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


@dataclass(frozen=True)
class RenderOptions:
    episodes: str = "all"  # all | last
    sharegpt: bool = False
    instruction: bool = False
    verifier: bool = False
    embed_tools: bool = True
    schema: str = "harbor"  # harbor | messages | llamafactory
    rows: str = "episode"  # episode | trajectory
    reasoning: str = "field"  # field (reasoning_content) | inline (<think> in content)


# --- Harbor ---------------------------------------------------------------------------

def harbor_assistant_text(turn: Turn) -> str:
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


def harbor_messages(turns: list[Turn], conversation: Conversation,
                    opts: RenderOptions) -> list[list[dict[str, Any]]]:
    """One message per turn, as Harbor renders it."""
    tools = conversation.tool_definitions
    out = []
    for turn in turns:
        if turn.role == "assistant":
            out.append([{"role": "assistant", "content": harbor_assistant_text(turn)}])
            continue
        text = turn.text
        if turn.tools_prefix and tools and opts.embed_tools:
            text = f"<tools>\n{json.dumps(tools, ensure_ascii=False, indent=2)}\n</tools>\n\n{text}"
        out.append([{"role": turn.harbor_role, "content": text}])
    return out


def sharegpt(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"from": SHAREGPT_ROLES.get(m["role"], m["role"]), "value": m["content"]} for m in messages]


# --- OpenAI / TRL messages ------------------------------------------------------------

def _message(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "reasoning_content": extra.get("reasoning_content"),
            "tool_calls": extra.get("tool_calls"), "tool_call_id": extra.get("tool_call_id")}


def chat_messages(turns: list[Turn], conversation: Conversation,
                  opts: RenderOptions) -> list[list[dict[str, Any]]]:
    """The messages of each turn: tool calls with ids, each tool result a `tool` message
    answering its call (paired by source_call_id, else by order)."""
    out: list[list[dict[str, Any]]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            calls = []
            for k, call in enumerate(turn.tool_calls):
                call_id = call.id or f"call_{index}_{k}"
                arguments = call.arguments if call.arguments is not None else {}
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": call.name or "", "arguments": dumps(arguments)}})
            pending = [c["id"] for c in calls]
            content, reasoning = turn.text, turn.reasoning
            if reasoning and opts.reasoning == "inline":
                content, reasoning = f"<think>{reasoning}</think>\n{content}", None
            out.append([_message("assistant", content, reasoning_content=reasoning,
                                 tool_calls=calls or None)])
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


# --- LLaMA-Factory (sharegpt layout with function_call / observation) -------------------

def llamafactory(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], str | None]:
    """(conversations, system) in LLaMA-Factory's layout: human/observation at odd places,
    gpt/function_call at even ones; neighbours of one side are merged so nothing is lost.
    Reasoning and the text beside a tool call go in a <think> block, which LLaMA-Factory's
    function formatter strips before parsing the call JSON."""
    system = None
    rest = messages
    if rest and rest[0]["role"] == "system":
        system, rest = rest[0]["content"], rest[1:]
    groups: list[dict[str, Any]] = []
    for m in rest:
        side = "assistant" if m["role"] == "assistant" else "user"
        if not groups or groups[-1]["side"] != side:
            groups.append({"side": side, "thoughts": [], "texts": [], "calls": [], "tool": False})
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
        groups.insert(0, {"side": "user", "thoughts": [], "texts": [], "calls": [], "tool": False})
    while groups and groups[-1]["side"] == "user":  # a sample ends on an assistant turn
        groups.pop()
    out = []
    for group in groups:
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


# --- rows -----------------------------------------------------------------------------

def _counts(turns: list[Turn]) -> tuple[int, int, int | None, int | None]:
    n_turns = n_calls = 0
    prompt = completion = None
    for turn in turns:
        if turn.role != "assistant":
            continue
        n_turns += 1
        n_calls += len(turn.tool_calls)
        if turn.prompt_tokens is not None:
            prompt = (prompt or 0) + turn.prompt_tokens
        if turn.completion_tokens is not None:
            completion = (completion or 0) + turn.completion_tokens
    return n_turns, n_calls, _int64(prompt), _int64(completion)


def _int64(value: int | None) -> int | None:
    """A sum that fits the int64 column, else unknown (None) rather than a crash."""
    return value if value is None or -(2**63) <= value < 2**63 else None


def selected_episodes(trace: TrialTrace, opts: RenderOptions) -> list[tuple[Conversation, Episode]]:
    """What to export: every episode, or (--rows trajectory) each conversation's whole last
    episode; with --episodes last, only the main chain's final one (subagents always)."""
    chosen = []
    for conversation in trace.conversations:
        episodes = conversation.episodes[-1:] if opts.rows == "trajectory" else conversation.episodes
        chosen += [(conversation, e) for e in episodes]
    main = [(c, e) for c, e in chosen if c.source == "main"]
    subs = [(c, e) for c, e in chosen if c.source != "main"]
    if opts.episodes == "last":
        main = main[-1:]
    return main + subs


class _Rendered:
    """A conversation's turns rendered once; an episode whose turns are a prefix of them
    takes a slice instead of rendering again."""

    def __init__(self, render, conversation: Conversation, opts: RenderOptions):
        self.render, self.conversation, self.opts = render, conversation, opts
        self.base = max(conversation.episodes, key=lambda e: len(e.turns)).turns
        self.per_turn = render(self.base, conversation, opts)
        self.ends = [0]
        for messages in self.per_turn:
            self.ends.append(self.ends[-1] + len(messages))
        self.flat = [m for messages in self.per_turn for m in messages]
        tools = conversation.tool_definitions
        self.tools_json = dumps(tools) if tools else None

    def messages(self, episode: Episode) -> list[dict[str, Any]]:
        n = len(episode.turns)
        if n <= len(self.base) and (n == 0 or episode.turns[n - 1] is self.base[n - 1]):
            return self.flat[:self.ends[n]]
        return [m for ms in self.render(episode.turns, self.conversation, self.opts) for m in ms]


def render_rows(selected: list[tuple[Conversation, Episode]], trace: TrialTrace, meta: TrialMeta,
                opts: RenderOptions, source_path: str, verifier_output: str | None,
                images: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """The rows of the selected (conversation, episode) pairs of a trial."""
    render = harbor_messages if opts.schema == "harbor" else chat_messages
    cache: dict[int, _Rendered] = {}
    rows = []
    for conversation, episode in selected:
        rendered = cache.get(id(conversation))
        if rendered is None:
            rendered = cache[id(conversation)] = _Rendered(render, conversation, opts)
        messages = rendered.messages(episode)
        tools_json = rendered.tools_json
        n_turns, n_calls, prompt_tokens, completion_tokens = _counts(episode.turns)
        row: dict[str, Any] = {}
        if opts.schema == "harbor":
            row["conversations"] = messages
        elif opts.schema == "messages":
            row["messages"] = messages
            row["tools"] = tools_json
        else:
            row["conversations"], row["system"] = llamafactory(messages)
            row["tools"] = tools_json
        row.update({
            "agent": conversation.agent,
            "model": conversation.model,
            "model_provider": meta.model_provider,
            "date": meta.date,
            "task": meta.task,
            "episode": f"episode-{episode.number}",
            "run_id": meta.run_id,
            "trial_name": meta.trial_name,
            "result": meta.result,
            "trace_source": conversation.source,
            "reward": meta.reward,
            "success": meta.success,
            "n_turns": n_turns,
            "n_tool_calls": n_calls,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "source_path": source_path,
        })
        if opts.schema == "harbor":
            row["tool_definitions"] = tools_json
        if opts.instruction:
            row["instruction"] = trace.instruction
        if opts.verifier:
            row["verifier_output"] = verifier_output
        if opts.sharegpt and opts.schema == "harbor":
            row["conversations_sharegpt"] = sharegpt(messages)
        if images is not None:  # in the order the row's text shows their placeholders
            row["images"] = [{"bytes": images[p], "path": p}
                             for t in episode.turns for p in t.images if p in images]
        rows.append(row)
    return rows
