"""Rows from a TrialTrace, in any registered schema.

Each turn is rendered once; an ATIF episode row is a prefix of its conversation,
so its messages are a slice of the conversation's rendered messages.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harbor_hooks.formats import FORMATS
from harbor_hooks.options import ExportOptions
from harbor_hooks.readers.atif import TOKEN_ID_KEYS
from harbor_hooks.readers.meta import TrialMeta
from harbor_hooks.readers.trace import Conversation, Episode, TrialTrace, Turn


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


def selected_episodes(trace: TrialTrace, opts: ExportOptions) -> list[tuple[Conversation, Episode]]:
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

    def __init__(self, fmt, conversation: Conversation, opts: ExportOptions, counts: Counter):
        self.render, self.conversation, self.opts, self.counts = fmt.render, conversation, opts, counts
        self.base = max(conversation.episodes, key=lambda e: len(e.turns)).turns
        self.per_turn = self.render(self.base, conversation, opts, counts)
        self.ends = [0]
        for messages in self.per_turn:
            self.ends.append(self.ends[-1] + len(messages))
        self.flat = [m for messages in self.per_turn for m in messages]
        tools = conversation.tool_definitions
        self.tools = fmt.tools_column(tools) if tools else None

    def messages(self, episode: Episode) -> list[dict[str, Any]]:
        n = len(episode.turns)
        if n <= len(self.base) and (n == 0 or episode.turns[n - 1] is self.base[n - 1]):
            return self.flat[:self.ends[n]]
        return [m for ms in self.render(episode.turns, self.conversation, self.opts, self.counts) for m in ms]


def render_rows(selected: list[tuple[Conversation, Episode]], trace: TrialTrace, meta: TrialMeta,
                opts: ExportOptions, source_path: str, verifier_output: str | None,
                media: dict[str, bytes] | None = None, counts: Counter | None = None) -> list[dict[str, Any]]:
    """The rows of the selected (conversation, episode) pairs of a trial; what was reshaped
    on the way (results with no call, merged messages) counted in counts."""
    counts = Counter() if counts is None else counts
    fmt = FORMATS[opts.schema]
    cache: dict[int, _Rendered] = {}
    rows = []
    for conversation, episode in selected:
        rendered = cache.get(id(conversation))
        if rendered is None:
            rendered = cache[id(conversation)] = _Rendered(fmt, conversation, opts, counts)
        row = fmt.columns(rendered.messages(episode), rendered.tools, opts, counts)
        n_turns, n_calls, prompt_tokens, completion_tokens = _counts(episode.turns)
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
        if opts.instruction_metadata:
            row["instruction"] = trace.instruction
        if opts.verifier_metadata:
            row["verifier_output"] = verifier_output
        if opts.token_ids:  # one entry per assistant turn of the row (None where the step had none)
            found = [t.token_ids or {} for t in episode.turns if t.role == "assistant"]
            row.update({key: [ids.get(key) for ids in found] for key in TOKEN_ID_KEYS})
        if media is not None:  # in the order the row's text shows their placeholders
            row["images"] = [{"bytes": media[p], "path": p} for t in episode.turns for p in t.images if p in media]
            row["audio"] = [{"bytes": media[p], "path": p} for t in episode.turns for p in t.audio if p in media]
        rows.append(row)
    return rows
