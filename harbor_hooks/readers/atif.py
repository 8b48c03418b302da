"""ATIF trajectories: agent/trajectory.json, its continuation chain, and subagent files."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.readers.trace import (
    json_text,
    Conversation,
    Episode,
    ToolCall,
    TrialTrace,
    Turn,
    TurnPrefix,
    content_text,
)
from harbor_hooks.errors import TraceReadError
from harbor_hooks.report import ExportReport, fs_text
from harbor_hooks.readers.meta import TrialMeta

MAX_CHAIN = 10_000


def has_trajectory(agent_entries: dict[str, os.DirEntry]) -> bool:
    # any entry: a trajectory.json that is a directory, a dangling or looping link is
    # reported for what it is when read, not as "wrote no trajectory"
    return "trajectory.json" in agent_entries


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else content_text(value)


def _steps(doc: dict[str, Any], path: str) -> list[Any]:
    steps = doc.get("steps", [])
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise TraceReadError(path, f"'steps' is a {type(steps).__name__}, expected a list")
    return steps


def _label(step: dict[str, Any]) -> str:
    """Which step a skip reason is about (formatted only when one is skipped)."""
    return f"(step {step.get('step_id')})"


def _observation_turn(step: dict[str, Any], files: TrialFiles, path: str,
                      inline: "_Inliner | None" = None) -> Turn | None:
    observation = step.get("observation")
    if observation is None:
        return None
    if not isinstance(observation, dict):  # never dropped silently
        files.report.skip("step", path, f"observation is a {type(observation).__name__}, "
                          f"expected an object {_label(step)}")
        return None
    results = observation.get("results")
    if results is None:
        return None
    if not isinstance(results, list):
        files.report.skip("step", path, f"observation results is a "
                          f"{type(results).__name__}, expected a list {_label(step)}")
        return None
    pairs: list[tuple[str | None, str]] = []
    images: list[str] = []
    audio: list[str] = []
    for result in results:
        if not isinstance(result, dict):
            files.report.skip("step", path, f"observation result is a "
                              f"{type(result).__name__}, expected an object {_label(step)}")
        elif "content" in result or (inline is not None and result.get("subagent_trajectory_ref")):
            call_id = result.get("source_call_id")
            text = files.message(content_text(result.get("content"), images, audio), path)
            block = inline(result, images, audio) if inline is not None else ""
            pairs.append((str(call_id) if call_id is not None else None,
                          f"{block}\n{text}" if block and text else block or text))
    if not pairs:
        return None
    return Turn(role="tool", harbor_role="user", text="\n".join(t for _, t in pairs),
                results=pairs, images=images, audio=audio)


def _tool_calls(step: dict[str, Any], path: str, report: ExportReport) -> list[ToolCall]:
    raw = step.get("tool_calls")
    if not raw:
        return []
    if not isinstance(raw, list):
        report.skip("step", path, f"tool_calls is not a list {_label(step)}")
        return []
    calls = []
    for call in raw:
        if not isinstance(call, dict):
            report.skip("step", path, f"tool call is not an object {_label(step)}")
            continue
        call_id = call.get("tool_call_id")
        name = call.get("function_name")
        calls.append(ToolCall(
            id=str(call_id) if call_id is not None else None,
            name=str(name) if name is not None and not isinstance(name, str) else name,
            arguments=call.get("arguments", {}),
        ))
    return calls


TOKEN_ID_KEYS = ("prompt_token_ids", "completion_token_ids", "logprobs")


def _token_ids(metrics: dict[str, Any], path: str, report: ExportReport) -> dict[str, list] | None:
    """An agent step's literal token ids and log-probabilities (lists of numbers), if any;
    another value is skipped, counted."""
    found = {}
    for key in TOKEN_ID_KEYS:
        value = metrics.get(key)
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            found[key] = value
        else:
            report.skip("step", path, f"metrics.{key} is not a list of numbers: left out")
    return found or None


def _turns(steps: list[Any], path: str, files: TrialFiles, whole: bool,
           tool_definitions: list | None, inline: "_Inliner | None" = None) -> tuple[list[Turn], list[int]]:
    """All turns of a trajectory, and where each episode ends (exclusive index).

    An agent step's observation follows it; an episode ends right after its agent
    turn, so the observation opens the next episode, as in Harbor's rows.
    """
    report = files.report
    turns: list[Turn] = []
    ends: list[int] = []
    tools_pending = bool(tool_definitions)
    for step in steps:
        if not isinstance(step, dict):
            report.skip("step", path, f"step is a {type(step).__name__}, expected an object")
            continue
        source = step.get("source")
        images: list[str] = []
        audio: list[str] = []
        if source in ("system", "user"):
            turn = Turn(role=source, harbor_role="user",
                        text=files.message(content_text(step.get("message"), images, audio), path),
                        images=images, audio=audio)
            if source == "system" and tools_pending:
                turn.tools_prefix = True
                tools_pending = False
            turns.append(turn)
        elif source == "agent":
            metrics = step.get("metrics")
            metrics = metrics if isinstance(metrics, dict) else {}
            turns.append(Turn(
                role="assistant", harbor_role="assistant",
                text=files.message(content_text(step.get("message"), images, audio), path), images=images,
                audio=audio,
                reasoning=files.message(_text(step.get("reasoning_content")) or "", path) or None,
                tool_calls=_tool_calls(step, path, report),
                prompt_tokens=_token_count(metrics.get("prompt_tokens")),
                completion_tokens=_token_count(metrics.get("completion_tokens")),
                token_ids=_token_ids(metrics, path, report) if files.token_ids else None,
            ))
            if not step.get("is_copied_context"):
                ends.append(len(turns))
            observation = _observation_turn(step, files, path, inline)
            if observation is not None:
                turns.append(observation)
        else:
            report.skip("step", path, f"unknown source {source!r} {_label(step)}")
    if whole:
        ends = [len(turns)] if any(t.role == "assistant" for t in turns) else []
    return turns, ends


MAX_TOKEN_COUNT = 1 << 40  # far above any real count; row sums must fit the int64 columns


def _token_count(value: Any) -> int | None:
    """A step's token count, or None when it is not a plausible integer (a string, a
    bool, a negative or 2**64): such a value must not reach the int64 row columns."""
    return value if type(value) is int and 0 <= value < MAX_TOKEN_COUNT else None


def _agent_fields(doc: dict[str, Any], meta: TrialMeta) -> tuple[str, str, list | None]:
    agent = doc.get("agent")
    agent = agent if isinstance(agent, dict) else {}
    tools = agent.get("tool_definitions")
    return (
        str(agent.get("name") or meta.agent),
        str(agent.get("model_name") or meta.model),
        tools if isinstance(tools, list) and tools else None,
    )


def _subagent_refs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The subagent_trajectory_ref entries of a trajectory's observation results."""
    refs = []
    for step in doc.get("steps") or []:
        observation = step.get("observation") if isinstance(step, dict) else None
        results = observation.get("results") if isinstance(observation, dict) else None
        for result in results if isinstance(results, list) else []:
            subrefs = result.get("subagent_trajectory_ref") if isinstance(result, dict) else None
            refs += [ref for ref in (subrefs if isinstance(subrefs, list) else []) if isinstance(ref, dict)]
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

    def __init__(self, found: list[tuple[str, dict[str, Any], str]], agent_dir: str, files: TrialFiles):
        self.embedded = {tid: (sub, where) for tid, sub, where in found}
        self.agent_dir, self.files = agent_dir, files
        self.inlined: set[str] = set()

    def __call__(self, result: dict[str, Any], images: list[str], audio: list[str]) -> str:
        refs = result.get("subagent_trajectory_ref")
        blocks = []
        for ref in refs if isinstance(refs, list) else []:
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
    parts = [f'<subagent name="{name.replace(chr(34), chr(39))}">']
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


def _check_ref(ref: dict[str, Any], ids: set[str], agent_dir: str, main_path: str, files: TrialFiles) -> None:
    """Count a subagent_trajectory_ref that resolves to nothing: no embedded trajectory of
    its trajectory_id, and no file of its trajectory_path in agent/."""
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


def _in_agent_dir(agent_dir: str, ref: str) -> str | None:
    """The path a reference names when it is a file directly in agent/, else None.
    A path check only: symlinks are caught where files are read (TrialFiles)."""
    if "\0" in ref:
        return None
    path = os.path.normpath(os.path.join(agent_dir, ref))
    return path if os.path.dirname(path) == os.path.normpath(agent_dir) else None


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
    found = _embedded(main_doc, main_path, files) if subagents != "none" else []
    inline = _Inliner(found, agent_dir, files) if subagents == "inline" else None

    conversations: list[Conversation] = []
    chain = [main_path]
    refs: list[dict[str, Any]] = []
    number = 0
    path = main_path
    while True:
        agent, model, tools = _agent_fields(doc, meta)
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
        inlined = inline.inlined if inline is not None else set()
        conversations.extend(_subagents(agent_dir, set(chain) | inlined, meta, files))
        conversations.extend(_embedded_conversations([f for f in found if f[0] not in inlined], meta, files))
        ids = {tid for tid, _, _ in found}
        for ref in refs + [ref for _, sub, _ in found for ref in _subagent_refs(sub)]:
            _check_ref(ref, ids, agent_dir, chain[0], files)
    return TrialTrace("atif", conversations, instruction)


def _instruction(doc: dict[str, Any]) -> str | None:
    """The first non-empty step message, stripped (Harbor's --instruction-metadata)."""
    steps = doc.get("steps")
    for step in steps if isinstance(steps, list) else []:
        message = step.get("message") if isinstance(step, dict) else None
        if isinstance(message, str) and message.strip():
            return message.strip()
    return None


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
