"""ATIF steps to Turns: messages, reasoning, tool calls, observations, metrics (used for a
main trajectory, its continued segments and its subagents alike)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harbor_hooks.errors import TraceReadError
from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.readers.meta import TrialMeta
from harbor_hooks.readers.trace import ToolCall, Turn, content_text
from harbor_hooks.report import ExportReport

# a tool result's subagents as text (--subagents inline; subagents.py): (result, images, audio) -> text
Inline = Callable[[dict[str, Any], list[str], list[str]], str]

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
                      inline: Inline | None = None) -> Turn | None:
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
           tool_definitions: list | None, inline: Inline | None = None) -> tuple[list[Turn], list[int]]:
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


def _in_agent_dir(agent_dir: str, ref: str) -> str | None:
    """The path a reference names when it is a file directly in agent/, else None.
    A path check only: symlinks are caught where files are read (TrialFiles)."""
    if "\0" in ref:
        return None
    path = os.path.normpath(os.path.join(agent_dir, ref))
    return path if os.path.dirname(path) == os.path.normpath(agent_dir) else None


