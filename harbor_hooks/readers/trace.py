"""Readers turn one agent output format into Conversations of Turns.

A Turn is format-neutral (text, reasoning, tool calls, tool results), so every
output schema renders from the same reading. Episodes are prefixes of a
conversation (ATIF) or conversations of their own (episode-N folders).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ToolCall:
    id: str | None
    name: str | None
    arguments: Any


@dataclass(slots=True)
class Turn:
    role: str  # OpenAI role: system | user | assistant | tool
    harbor_role: str  # the role Harbor's rows give this turn
    text: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    results: list[tuple[str | None, str]] = field(default_factory=list)  # tool turns
    images: list[str] = field(default_factory=list)  # image paths, relative to agent/
    audio: list[str] = field(default_factory=list)  # audio paths, relative to agent/
    tools_prefix: bool = False  # Harbor embeds tool definitions in this turn
    prompt_tokens: int | None = None  # from ATIF step metrics
    completion_tokens: int | None = None
    token_ids: dict[str, list] | None = None  # --token-ids: prompt_token_ids, completion_token_ids, logprobs


class TurnPrefix(Sequence):
    """The first `end` turns of a shared list, without copying them: ATIF episodes are
    prefixes of one conversation, and a copy per episode would make memory quadratic in
    the number of steps (100k tiny steps: 5e9 list slots)."""

    __slots__ = ("base", "end")

    def __init__(self, base: list[Turn], end: int):
        self.base, self.end = base, min(end, len(base))

    def __len__(self) -> int:
        return self.end

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.base[:self.end][index]
        if index < 0:
            index += self.end
        if not 0 <= index < self.end:
            raise IndexError("turn index out of range")
        return self.base[index]

    def __iter__(self):
        return itertools.islice(self.base, self.end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"TurnPrefix({self.end} of {len(self.base)} turns)"


@dataclass(slots=True)
class Episode:
    number: int
    turns: list[Turn] | TurnPrefix


@dataclass(slots=True)
class Conversation:
    source: str  # trace_source: "main" or the subagent's name
    agent: str
    model: str
    path: str  # the file or folder it was read from
    episodes: list[Episode]
    tool_definitions: list[Any] | None = None


@dataclass(slots=True)
class TrialTrace:
    format: str  # "atif" | "episodes"
    conversations: list[Conversation]
    instruction: str | None = None

    def unique_turns(self) -> list[Turn]:
        """Every turn once, in order (ATIF episodes are prefixes sharing their turns):
        each shared list is walked once, so this is linear in the turns, not the rows."""
        seen: dict[int, Turn] = {}
        walked: dict[int, int] = {}  # id(shared list) -> how far it has been walked
        for conversation in self.conversations:
            for episode in conversation.episodes:
                turns = episode.turns
                if isinstance(turns, TurnPrefix):
                    start = walked.get(id(turns.base), 0)
                    if turns.end <= start:
                        continue
                    walked[id(turns.base)] = turns.end
                    turns = turns.base[start:turns.end]
                for turn in turns:
                    seen.setdefault(id(turn), turn)
        return list(seen.values())


IMAGE_PLACEHOLDER = "[image: {}]"
AUDIO_PLACEHOLDER = "[audio: {}]"


def content_text(content: Any, images: list[str] | None = None, audio: list[str] | None = None) -> str:
    """Text of a message or observation content: a string, or a list of parts.

    Text parts are concatenated as the model saw them (Harbor keeps only the
    first part, which loses the rest); image parts become a placeholder and
    their path is collected; anything else is JSON.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image", "image_url", "audio"):
                source = part.get("source")
                path = source.get("path") if isinstance(source, dict) else None
                if path is None and isinstance(part.get("image_url"), dict):
                    path = part["image_url"].get("url")
                path = str(path) if path is not None else part.get("type")
                heard = part.get("type") == "audio"  # ATIF-v1.8
                found = audio if heard else images
                if found is not None:
                    found.append(path)
                out.append((AUDIO_PLACEHOLDER if heard else IMAGE_PLACEHOLDER).format(path))
            else:
                out.append(json_text(part))
        return "".join(out)
    return json_text(content)


# JSON as Harbor writes it into rows (json.dumps defaults, non-ASCII kept), one encoder;
# parsed JSON cannot be circular, so the per-call check is skipped
json_text = json.JSONEncoder(ensure_ascii=False, default=str, check_circular=False).encode
