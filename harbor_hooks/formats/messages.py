"""The OpenAI / TRL `messages` schema: assistant tool_calls with ids and their arguments as
JSON objects, each `tool` result right after its call, a `train` flag on assistant
messages, and a tools column (a list of JSON objects)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pyarrow as pa

from harbor_hooks.formats.arrow import CHAT_MESSAGE, TOOLS
from harbor_hooks.formats.text import dumps
from harbor_hooks.options import ExportOptions
from harbor_hooks.readers.trace import Conversation, Turn


def _message(role: str, content: str, **extra: Any) -> dict[str, Any]:
    """A message with only the keys that have a value (a template tests `key in message`)."""
    message = {"role": role, "content": content}
    message.update((key, value) for key, value in extra.items() if value is not None)
    return message


def arguments_json(value: Any) -> str:
    """Tool-call arguments as the text of a JSON value: an object stays one, and so does
    a string holding one (arguments as an API returns them); other text is a JSON string."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return dumps(value)
        return dumps(decoded) if isinstance(decoded, (dict, list)) else dumps(value)
    return dumps(value)


def _assistant(index: int, turn: Turn, opts: ExportOptions, counts: Counter) -> dict[str, Any]:
    calls = [{"id": call.id or f"call_{index}_{k}", "type": "function",
              "function": {"name": call.name or "", "arguments": arguments_json(call.arguments)}}
             for k, call in enumerate(turn.tool_calls)]
    for call in calls:
        if not call["function"]["arguments"].startswith("{"):
            counts["tool-call arguments that are no JSON object (kept as they are)"] += 1
    content, reasoning = turn.text, turn.reasoning
    if reasoning and opts.reasoning == "inline":
        content, reasoning = f"<think>{reasoning}</think>\n{content}", None
    return _message("assistant", content, reasoning_content=reasoning or None, tool_calls=calls or None,
                    train=True if opts.train_on == "all" else None)


def render(turns: list[Turn], conversation: Conversation, opts: ExportOptions,
           counts: Counter) -> list[list[dict[str, Any]]]:
    """The messages of each turn: tool calls with ids, each tool result a `tool` message
    answering its call (paired by source_call_id, else by order), in the order of the
    calls; a result with no call to answer keeps its place after them, as the environment
    speaking (a `user` message), counted when calls were waiting."""
    out: list[list[dict[str, Any]]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls not yet answered
    unnamed: set[str] = set()  # of them, the ids made here (the call had none)
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            message = _assistant(index, turn, opts, counts)
            pending = [c["id"] for c in message.get("tool_calls", ())]
            unnamed = {c["id"] for c, call in zip(message.get("tool_calls", ()), turn.tool_calls) if not call.id}
            out.append([message])
        elif turn.role == "tool":
            answered: dict[int, dict[str, Any]] = {}
            unpaired = []
            for k, (call_id, text) in enumerate(turn.results):
                if (call_id is None or (call_id not in pending and pending[k:k + 1] and pending[k] in unnamed)) \
                        and len(turn.results) == len(pending):
                    call_id = pending[k]  # the calls or the results have no ids: paired in order
                    if len(pending) > 1:
                        counts["tool results paired with a call by position (ids missing)"] += 1
                slot = pending.index(call_id) if call_id in pending else None
                if slot is not None and slot not in answered:
                    answered[slot] = _message("tool", text, tool_call_id=call_id)
                else:  # no call to answer (a terminal agent's screen): the environment speaks
                    unpaired.append(_message("user", text))
            if pending and unpaired:
                counts["tool results with no call to answer"] += len(unpaired)
            pending = []
            out.append([answered[slot] for slot in sorted(answered)] + unpaired)
        else:
            out.append([_message(turn.role if turn.role in ("system", "user") else "user", turn.text)])
    return out


def trained(messages: list[dict[str, Any]], opts: ExportOptions) -> list[dict[str, Any]]:
    """--train-on last: only a row's last assistant message carries loss (`train`); with
    all, each assistant message was rendered with train=True."""
    if opts.train_on == "all":
        return messages
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    return [dict(m, train=i == last) if m["role"] == "assistant" else m for i, m in enumerate(messages)]


def alternated(messages: list[dict[str, Any]], counts: Counter) -> list[dict[str, Any]]:
    """--alternate-roles: user and assistant strictly alternating after a leading system
    message, as Mistral's and Gemma's templates demand. A later system message becomes user
    text; neighbours of one role are merged into one message (texts joined by a blank
    line, tool calls in order), counted; a user message right after tool results that no
    plain assistant message answered is added to the last result (counted: calls and results
    are outside Mistral's alternation, so it would be a second user turn); tool-call ids
    become 9 letters and digits, the only form Mistral's template accepts (the same id for a
    call and its result)."""
    out: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    last_counted = None  # the last user or plain assistant message's role (what Mistral checks)
    for k, message in enumerate(messages):
        role = message["role"]
        if role == "system" and k > 0:
            role = "user"
            counts["system messages made user text"] += 1
        message = dict(message, role=role)
        if message.get("tool_calls"):
            message["tool_calls"] = [dict(c, id=_short_id(c["id"], ids)) for c in message["tool_calls"]]
        if message.get("tool_call_id"):
            message["tool_call_id"] = _short_id(message["tool_call_id"], ids)
        previous = out[-1] if out else None
        if role in ("assistant", "tool") and last_counted is None:
            # the conversation opens on the assistant: an empty user turn first, as Mistral's
            # check and LLaMA-Factory's layout want
            out.append({"role": "user", "content": ""})
            counts["empty user turns put before an opening assistant turn"] += 1
            last_counted, previous = "user", out[-1]
        if role == "user" and previous is not None and previous["role"] == "tool" and last_counted == "user":
            # after tool results, a user turn before any plain assistant one would be a second
            # user turn to Mistral's check (calls and results do not count): its text goes
            # with the results it follows
            previous["content"] = "\n\n".join(t for t in (previous["content"], message["content"]) if t)
            counts["user messages given with the tool result before them"] += 1
            continue
        if role == "user" or (role == "assistant" and not message.get("tool_calls")):
            last_counted = role
        if previous is None or role != previous["role"] or role in ("tool", "system"):
            out.append(message)
            continue
        counts["neighbour messages of one role merged"] += 1
        previous["content"] = "\n\n".join(t for t in (previous["content"], message["content"]) if t)
        for key in ("reasoning_content",):
            if message.get(key):
                previous[key] = "\n\n".join(t for t in (previous.get(key), message[key]) if t)
        if message.get("tool_calls"):
            previous["tool_calls"] = previous.get("tool_calls", []) + message["tool_calls"]
        if "train" in message:
            previous["train"] = bool(previous.get("train") or message["train"])
    return out


def _short_id(call_id: str, ids: dict[str, str]) -> str:
    if call_id not in ids:
        ids[call_id] = hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()[:9]
    return ids[call_id]


def one_call_each(messages: list[dict[str, Any]], counts: Counter) -> list[dict[str, Any]]:
    """--one-call-per-turn: an assistant message's text (and reasoning) beside tool calls
    becomes a message of its own, then each call is a message followed by its result, for
    templates that show one call per message and nothing beside it. Counted."""
    answers = {m["tool_call_id"]: m for m in messages if m["role"] == "tool" and m.get("tool_call_id")}
    moved: set[int] = set()  # results placed right after their call
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls") or ()
        if id(message) in moved:
            continue
        if message["role"] != "assistant" or not calls or (len(calls) == 1 and not message["content"]):
            out.append(message)
            continue
        counts["assistant messages split to one tool call each"] += 1
        head = {k: v for k, v in message.items() if k != "tool_calls"}
        if message["content"] or message.get("reasoning_content"):
            out.append(head)
        for call in calls:
            out.append({"role": "assistant", "content": "", "tool_calls": [call],
                        **({"train": head["train"]} if "train" in head else {})})
            answer = answers.get(call["id"])
            if answer is not None and id(answer) not in moved:
                out.append(answer)
                moved.add(id(answer))
    return out


def shaped(messages: list[dict[str, Any]], opts: ExportOptions, counts: Counter) -> list[dict[str, Any]]:
    """A row's messages with --alternate-roles, --one-call-per-turn and --train-on applied."""
    if opts.alternate_roles:
        messages = alternated(messages, counts)
    if opts.one_call_per_turn:
        messages = one_call_each(messages, counts)
    return trained(messages, opts)


def tools_column(tools: list[Any]) -> list[str]:
    return [dumps(tool) for tool in tools]  # each definition a JSON object


def columns(messages: list[dict[str, Any]], tools: list[str] | None, opts: ExportOptions,
            counts: Counter) -> dict[str, Any]:
    return {"messages": shaped(messages, opts, counts), "tools": tools}


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    return [("messages", pa.list_(CHAT_MESSAGE)), ("tools", TOOLS)], [], []
