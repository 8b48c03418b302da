"""terminus-2 episode folders: agent/episode-N/ with debug.json or prompt.txt, and a reply."""

from __future__ import annotations

import os
import re
from typing import Any

from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.readers.trace import Conversation, Episode, TrialTrace, Turn, content_text, json_text
from harbor_hooks.errors import TraceReadError
from harbor_hooks.readers.meta import TrialMeta

EPISODE_DIR = re.compile(r"episode-(\d+)")
REPLY_FIELDS = ("content", "text", "message", "output")
ROLES = {"system", "user", "assistant", "tool"}


def _episode_entries(agent_entries: dict[str, os.DirEntry]) -> tuple[list[tuple[int, str]], list[str]]:
    """(number, path) of every episode-N folder in numeric order, and the episode-N
    entries that are not folders (files, symlinks: never followed out of the trial)."""
    found, others = [], []
    for name, entry in agent_entries.items():
        match = EPISODE_DIR.fullmatch(name)
        if not match:
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            found.append((int(match.group(1)), entry.path))
        else:
            others.append(entry.path)
    return sorted(found), sorted(others)


def episode_dirs(agent_entries: dict[str, os.DirEntry]) -> list[tuple[int, str]]:
    """(number, path) of every episode-N folder of agent/ (TrialFiles.entries), in numeric order."""
    return _episode_entries(agent_entries)[0]


def _reply_text(value: Any) -> str:
    if isinstance(value, dict):
        for key in REPLY_FIELDS:
            if key in value:
                return _reply_text(value[key])
        return json_text(value)
    return content_text(value)


def _read_reply(folder: str, files: TrialFiles) -> str | None:
    response_json = os.path.join(folder, "response.json")
    if os.path.lexists(response_json):
        return files.message(_reply_text(files.json(response_json)), response_json)
    response_txt = os.path.join(folder, "response.txt")
    if os.path.lexists(response_txt):
        return files.message(files.text(response_txt), response_txt)
    return None


def _read_input(folder: str, files: TrialFiles) -> list[Turn]:
    debug = os.path.join(folder, "debug.json")
    if os.path.lexists(debug):
        data = files.json(debug)
        messages = data.get("input") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            raise TraceReadError(debug, "no 'input' list of messages")
        turns = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise TraceReadError(debug, f"input[{i}] is not a {{role, content}} message")
            role = str(message["role"])
            images: list[str] = []
            text = files.message(content_text(message["content"], images), debug)
            turns.append(Turn(role=role if role in ROLES else "user", harbor_role=role,
                              text=text, images=images))
        return turns
    prompt = os.path.join(folder, "prompt.txt")
    if os.path.lexists(prompt):
        return [Turn(role="user", harbor_role="user", text=files.message(files.text(prompt), prompt))]
    raise TraceReadError(folder, "no debug.json or prompt.txt")


def read_episode_trial(trial_dir: str, meta: TrialMeta, files: TrialFiles, last_only: bool = False) -> TrialTrace:
    """The trial's complete episodes; with last_only, only the last complete one, read from
    the end (each debug.json repeats the whole history: a long trial's folders, read whole,
    would cost gigabytes for one row)."""
    report = files.report
    agent_dir = os.path.join(trial_dir, "agent")
    episodes = []
    folders, others = _episode_entries(files.entries(agent_dir))
    for path in others:
        kind = "a symlink" if os.path.islink(path) else "not a directory"
        report.skip("episode", path, f"is {kind}, expected an episode folder")
    for number, folder in reversed(folders) if last_only else folders:
        try:
            reply = _read_reply(folder, files)
            if reply is None:
                report.skip("episode", folder, "no reply (cut off before response.json/response.txt)")
                continue
            turns = _read_input(folder, files)
        except TraceReadError as exc:
            report.skip("episode", exc.path, exc.reason)
            continue
        except RecursionError:
            report.skip("episode", folder, "nested too deeply to read")
            continue
        turns.append(Turn(role="assistant", harbor_role="assistant", text=reply))
        episodes.append(Episode(number, turns))
        if last_only:
            break
    instruction = None
    if episodes:
        for turn in episodes[0].turns:
            if turn.role in ("system", "user") and turn.text.strip():
                instruction = turn.text.strip()
                break
    conversation = Conversation("main", meta.agent, meta.model, agent_dir, episodes, None)
    return TrialTrace("episodes", [conversation], instruction)
