"""ATIF trajectories: agent/trajectory.json, its continuation chain, and its subagents."""

from __future__ import annotations

import os
from typing import Any

from harbor_hooks.errors import TraceReadError
from harbor_hooks.readers.atif_steps import TOKEN_ID_KEYS, _agent_fields, _in_agent_dir, _steps, _turns
from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.readers.meta import TrialMeta
from harbor_hooks.readers.subagents import _embedded, _Inliner, _subagent_refs, subagent_conversations
from harbor_hooks.readers.trace import Conversation, Episode, TrialTrace, TurnPrefix

__all__ = ["TOKEN_ID_KEYS", "has_trajectory", "read_atif_trial"]

MAX_CHAIN = 10_000


def has_trajectory(agent_entries: dict[str, os.DirEntry]) -> bool:
    # any entry: a trajectory.json that is a directory, a dangling or looping link is
    # reported for what it is when read, not as "wrote no trajectory"
    return "trajectory.json" in agent_entries


def _segment_path(agent_dir: str, ref: Any, current: str, files: TrialFiles) -> str:
    """Where a continued_trajectory_ref points; it must name a file inside agent/."""
    if not isinstance(ref, str) or not ref or "\0" in ref:
        raise TraceReadError(current, f"continued_trajectory_ref {ref!r} is not a file name")
    path = _in_agent_dir(agent_dir, ref)
    if path is None:
        raise TraceReadError(current, f"continued_trajectory_ref {ref!r} points outside agent/")
    if not files.is_file(agent_dir, os.path.basename(path)):
        raise TraceReadError(current, f"continued_trajectory_ref {ref!r} names no file")
    return path


def read_atif_trial(trial_dir: str, meta: TrialMeta, files: TrialFiles,
                    subagents: str = "separate") -> TrialTrace:
    """A trial's ATIF conversations: the main chain (continued segments followed), then
    (--subagents separate) each subagent's; with inline, the subagents a tool result refers
    to are text blocks in it (and the others, which no call spawned, conversations)."""
    report = files.report
    agent_dir = os.path.join(trial_dir, "agent")
    main_path = os.path.join(agent_dir, "trajectory.json")
    doc = main_doc = files.json_object(main_path, trajectory=True)  # the main file failing fails the trial
    found: list[tuple[str, dict[str, Any], str]] = []  # embedded subagents, of every segment
    seen: set[str] = set()
    inline = _Inliner(agent_dir, files) if subagents == "inline" else None

    conversations: list[Conversation] = []
    chain = [main_path]
    refs: list[dict[str, Any]] = []
    number = 0
    path = main_path
    while True:
        agent, model, tools = _agent_fields(doc, meta)
        if subagents != "none":
            segment = _embedded(doc, path, files, seen=seen)
            found += segment
            if inline is not None:
                inline.add(segment)
        try:
            turns, ends = _turns(_steps(doc, path), path, files, whole=False, tool_definitions=tools,
                                 inline=inline)
        except TraceReadError as exc:
            if path == main_path:
                raise
            # a bad continuation segment ends the chain; the segments before it are kept
            report.skip("file", exc.path, exc.reason)
            break
        episodes = [Episode(number + k, TurnPrefix(turns, end)) for k, end in enumerate(ends)]
        number += len(episodes)
        conversations.append(Conversation("main", agent, model, path, episodes, tools))
        refs.extend(_subagent_refs(doc))
        ref = doc.get("continued_trajectory_ref")
        if not ref:
            break
        try:
            path = _segment_path(agent_dir, ref, path, files)
            if path in chain:
                raise TraceReadError(chain[-1], f"continued_trajectory_ref {ref!r} loops back")
            if len(chain) >= MAX_CHAIN:
                raise TraceReadError(chain[-1], f"continuation chain longer than {MAX_CHAIN}")
            chain.append(path)  # before reading: a bad segment is not read again as a subagent
            doc = files.json_object(path, trajectory=True)
        except TraceReadError as exc:
            report.skip("file", exc.path, exc.reason)
            break

    instruction = _instruction(main_doc)

    if subagents != "none":
        conversations += subagent_conversations(agent_dir, chain, found, inline, refs, meta, files)
    return TrialTrace("atif", conversations, instruction)


def _instruction(doc: dict[str, Any]) -> str | None:
    """The first non-empty step message, stripped (Harbor's --instruction-metadata)."""
    steps = doc.get("steps")
    for step in steps if isinstance(steps, list) else []:
        message = step.get("message") if isinstance(step, dict) else None
        if isinstance(message, str) and message.strip():
            return message.strip()
    return None


