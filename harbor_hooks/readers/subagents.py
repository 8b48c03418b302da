"""ATIF subagents: trajectory.<name>.json files, and (ATIF-v1.7) trajectories embedded in
subagent_trajectories, nested ones too, resolved from a tool result's subagent_trajectory_ref
by trajectory_id or trajectory_path; exported as conversations of their own, or inline."""

from __future__ import annotations

import html
import os
from collections import Counter
from typing import Any

from harbor_hooks.errors import TraceReadError
from harbor_hooks.readers.atif_steps import _agent_fields, _in_agent_dir, _steps, _turns
from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.readers.meta import TrialMeta
from harbor_hooks.readers.trace import Conversation, Episode, Turn, json_text
from harbor_hooks.report import fs_text


def _subagent_refs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The subagent_trajectory_ref entries of a trajectory's observation results."""
    refs = []
    for step in doc.get("steps") or []:
        observation = step.get("observation") if isinstance(step, dict) else None
        results = observation.get("results") if isinstance(observation, dict) else None
        for result in results if isinstance(results, list) else []:
            subrefs = result.get("subagent_trajectory_ref") if isinstance(result, dict) else None
            if subrefs is not None:  # anything but a list of objects is counted by _check_ref
                refs += subrefs if isinstance(subrefs, list) else [subrefs]
    return refs


MAX_SUBAGENT_DEPTH = 16


def _embedded(doc: dict[str, Any], path: str, files: TrialFiles, depth: int = 0,
              seen: set[str] | None = None) -> list[tuple[str, dict[str, Any], str]]:
    """ATIF-v1.7 embedded subagents: (trajectory_id, trajectory, where it is) of every entry
    of subagent_trajectories, nested ones after their parent; a bad entry is skipped, counted."""
    seen = set() if seen is None else seen
    found = []
    subs = doc.get("subagent_trajectories")
    if subs is not None and not isinstance(subs, list):
        files.report.skip("file", path, f"subagent_trajectories is a {type(subs).__name__}, expected a list")
        return found
    for k, sub in enumerate(subs or []):
        tid = sub.get("trajectory_id") if isinstance(sub, dict) else None
        where = f"{path}#subagent_trajectories[{k}]"
        if not isinstance(tid, str) or not tid:
            files.report.skip("file", where, "embedded subagent trajectory has no trajectory_id")
            continue
        if tid in seen:
            files.report.skip("file", where, f"trajectory_id {tid!r} appears twice")
            continue
        seen.add(tid)
        found.append((tid, sub, where))
        if depth + 1 >= MAX_SUBAGENT_DEPTH:
            files.report.skip("file", where, f"subagents nested deeper than {MAX_SUBAGENT_DEPTH}")
            continue
        found += _embedded(sub, where, files, depth + 1, seen)
    return found


def _embedded_conversations(found: list[tuple[str, dict[str, Any], str]], meta: TrialMeta,
                            files: TrialFiles) -> list[Conversation]:
    """Embedded subagents as conversations of their own (trace_source: the subagent's name,
    with its trajectory_id when two share a name)."""
    named = []
    for tid, sub, where in found:
        try:
            _, model, tools = _agent_fields(sub, meta)
            turns, ends = _turns(_steps(sub, where), where, files, whole=True, tool_definitions=tools)
        except TraceReadError as exc:
            files.report.skip("file", exc.path, exc.reason)
            continue
        if not ends:
            files.report.skip("file", where, "subagent trajectory has no agent steps")
            continue
        named.append((_subagent_name(sub, tid), tid, model, where, turns, tools))
    counts = Counter(name for name, *_ in named)
    return [Conversation(name if counts[name] == 1 else f"{name}-{tid}", meta.agent, model, where,
                         [Episode(0, turns)], tools)
            for name, tid, model, where, turns, tools in named]


def _subagent_name(doc: dict[str, Any], fallback: str) -> str:
    agent = doc.get("agent")
    return fs_text(str(agent.get("name") or fallback) if isinstance(agent, dict) else fallback)


class _Inliner:
    """--subagents inline: the subagents a tool result refers to (by trajectory_id, embedded,
    or by trajectory_path, a file in agent/), each as a text block before the result's
    content; a nested subagent is a block inside its parent's. What is inlined is not
    exported again as rows of its own (`inlined`: trajectory ids and file paths)."""

    def __init__(self, agent_dir: str, files: TrialFiles):
        self.embedded: dict[str, tuple[dict[str, Any], str]] = {}
        self.agent_dir, self.files = agent_dir, files
        self.inlined: set[str] = set()

    def add(self, found: list[tuple[str, dict[str, Any], str]]) -> None:
        """Embedded subagents a segment holds (before its steps are read)."""
        self.embedded.update((tid, (sub, where)) for tid, sub, where in found)

    def __call__(self, result: dict[str, Any], images: list[str], audio: list[str]) -> str:
        refs = result.get("subagent_trajectory_ref")
        blocks = []
        for ref in refs if isinstance(refs, list) else [refs]:
            found = self._resolve(ref) if isinstance(ref, dict) else None
            if found is None or found[0] in self.inlined:
                continue  # unresolved refs are counted once, by _check_ref
            key, doc, where = found
            self.inlined.add(key)
            try:
                turns, _ = _turns(_steps(doc, where), where, self.files, whole=True, tool_definitions=None,
                                  inline=self)
            except TraceReadError as exc:
                self.files.report.skip("file", exc.path, exc.reason)
                continue
            for turn in turns:
                images += turn.images
                audio += turn.audio
            blocks.append(subagent_block(_subagent_name(doc, key), turns))
            self.files.report.reshaped["subagent conversations inlined at their call"] += 1
        return "\n".join(blocks)

    def _resolve(self, ref: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
        tid, path = ref.get("trajectory_id"), ref.get("trajectory_path")
        if isinstance(tid, str) and tid in self.embedded:
            return tid, *self.embedded[tid]
        full = _in_agent_dir(self.agent_dir, path) if isinstance(path, str) and path else None
        if full is None or not self.files.is_file(self.agent_dir, os.path.basename(full)):
            return None
        try:
            return full, self.files.json_object(full, trajectory=True), full
        except TraceReadError as exc:
            self.files.report.skip("file", exc.path, exc.reason)
            return None


def subagent_block(name: str, turns: list[Turn]) -> str:
    """A subagent's conversation as text (tags after Harbor's <think>/<tool_call> style): each
    turn in <user>, <system>, <assistant> (with its <think> and <tool_call>s) or
    <tool_response> tags, all in <subagent name="...">."""
    # the name as an attribute value: quotes, tags and line breaks escaped, so no name can
    # close the block or forge a turn
    parts = [f'<subagent name="{html.escape(name, quote=True).replace(chr(10), "&#10;").replace(chr(13), "&#13;")}">']
    for turn in turns:
        if turn.role == "assistant":
            body = [f"<think>{turn.reasoning}</think>"] if turn.reasoning else []
            body += [turn.text] if turn.text else []
            body += [f"<tool_call>\n{json_text({'name': c.name, 'arguments': c.arguments})}\n</tool_call>"
                     for c in turn.tool_calls]
            parts.append("<assistant>\n" + "\n".join(body) + "\n</assistant>")
        elif turn.role == "tool":
            parts += [f"<tool_response>\n{text}\n</tool_response>" for _, text in turn.results]
        else:
            parts.append(f"<{turn.role}>\n{turn.text}\n</{turn.role}>")
    parts.append("</subagent>")
    return "\n".join(parts)


def subagent_conversations(agent_dir: str, chain: list[str], found: list[tuple[str, dict[str, Any], str]],
                           inline: "_Inliner | None", refs: list[Any], meta: TrialMeta,
                           files: TrialFiles) -> list[Conversation]:
    """The subagents not inlined, as conversations of their own (files, then embedded ones),
    and every ref that resolves to nothing counted (the main chain's and the subagents')."""
    inlined = inline.inlined if inline is not None else set()
    out = _subagents(agent_dir, set(chain) | inlined, meta, files)
    out += _embedded_conversations([f for f in found if f[0] not in inlined], meta, files)
    ids = {tid for tid, _, _ in found}
    for ref in refs + [ref for _, sub, _ in found for ref in _subagent_refs(sub)]:
        _check_ref(ref, ids, agent_dir, chain[0], files)
    return out


def _check_ref(ref: Any, ids: set[str], agent_dir: str, main_path: str, files: TrialFiles) -> None:
    """Count a subagent_trajectory_ref that resolves to nothing: no embedded trajectory of
    its trajectory_id, and no file of its trajectory_path in agent/ (or no object at all)."""
    if not isinstance(ref, dict):
        files.report.skip("file", main_path, f"subagent_trajectory_ref entry {ref!r:.80} is not an object")
        return
    tid, path = ref.get("trajectory_id"), ref.get("trajectory_path")
    if isinstance(tid, str) and tid in ids:
        return
    if isinstance(path, str) and path:
        ref_path = _in_agent_dir(agent_dir, path)
        if ref_path is None:
            files.report.skip("file", main_path, f"subagent_trajectory_ref {path!r} points outside agent/")
        elif not files.is_file(agent_dir, os.path.basename(ref_path)):
            files.report.skip("file", ref_path, "subagent trajectory referenced but not found")
        return
    files.report.skip("file", main_path, f"subagent_trajectory_ref {tid!r} resolves to no embedded "
                                         "trajectory and names no file")


def _subagents(agent_dir: str, chain: set[str], meta: TrialMeta,
               files: TrialFiles) -> list[Conversation]:
    report = files.report
    try:
        listing = files.entries(agent_dir)
    except TraceReadError as exc:
        report.skip("file", exc.path, exc.reason)
        return []
    names = sorted(
        name for name in listing
        if name.startswith("trajectory.") and name.endswith(".json") and ".cont-" not in name
        and name != "trajectory.json"
    )
    out = []
    for name in names:
        path = os.path.join(agent_dir, name)
        if path in chain:
            continue
        try:
            if not files.is_file(agent_dir, name):
                raise TraceReadError(path, "is not a regular file")
            doc = files.json_object(path, trajectory=True)
            _, model, _ = _agent_fields(doc, meta)
            turns, ends = _turns(_steps(doc, path), path, files, whole=True, tool_definitions=None)
        except TraceReadError as exc:
            report.skip("file", exc.path, exc.reason)
            continue
        if not ends:
            report.skip("file", path, "subagent trajectory has no agent steps")
            continue
        source = fs_text(name[len("trajectory."):-len(".json")])
        # subagent rows carry the main agent's name (Harbor: names of subagents are internals)
        out.append(Conversation(source, meta.agent, model, path, [Episode(0, turns)], None))
    return out
