"""Secret redaction: the rules of secrets.py, applied to every text a row, a report or a card holds.

Each secret is replaced by a placeholder naming its kind, and counted. Texts are matched as
a terminal shows them: colour codes, carriage returns, wrapped lines and \\uXXXX escapes
do not hide a secret (the view below), while the text keeps its form around what is
replaced. User patterns (`redact_patterns`) run after the built-in ones, as kind "custom".
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from harbor_hooks.pipeline import secrets
from harbor_hooks.readers.trace import TrialTrace, Turn

PLACEHOLDER = "[REDACTED:{}]"
SECRET_NAME = re.compile(secrets.SECRET_NAME)
SECRET_VALUE = re.compile(secrets.SECRET_VALUE, re.S)
WRAP_MIN = 60  # a line this long may end where a terminal wrapped it
OPENINGS_CHARS = 1 << 22  # the conversations' openings remembered per process (see Redactor.trace)
# what a terminal shows differently from what it was sent: colours and cursor moves (ANSI
# escape sequences), carriage returns, and text JSON-escaped as \uXXXX
_NOISE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\r\n?|\\u([0-9a-fA-F]{4})")
_ESCAPED = re.compile(r"\\u").search
_WRAP = re.compile(r"\n(?<=[^\n]{%d}\n)" % WRAP_MIN)  # the end of a long line (found by its \n first)


class Redactor:
    """Replaces secrets in texts and counts them per kind (in .counts)."""

    def __init__(self, extra_patterns: list[str] | tuple[str, ...] = ()):
        self._rules, self._triggers, self._by_literal, self._openings = _compile(tuple(extra_patterns))
        self._custom = [(i, rule[1]) for i, rule in enumerate(self._rules) if rule[0] == "custom"]
        self.counts: Counter = Counter()

    def text(self, value: str, rules: list | None = None, plain: bool = False) -> str:
        """value with its secrets replaced; plain: value is known to hold no escape sequence."""
        if not value:
            return value
        rules = self._rules if rules is None else rules
        if not rules:
            return value
        view, passes = (value, 0) if plain else _shown_view(value)
        spans = self._spans(value, view, passes, [rule for rule in rules if rule[1](view)])
        joined = _WRAP.sub("", view)  # wrapped lines joined: a wrap may split a secret or its trigger
        if len(joined) != len(view):
            spans += self._spans(value, joined, passes + 1, [rule for rule in rules if rule[1](joined)])
        if not spans:
            return value
        out, pos = [], 0
        for start, end, kind in _merged(spans):
            out += (value[pos:start], PLACEHOLDER.format(kind))
            pos = end
            self.counts[kind] += 1
        out.append(value[pos:])
        return "".join(out)

    def _spans(self, value: str, view: str, passes: int, rules: list) -> list[tuple[int, int, int, str]]:
        """The secrets the rules find in a view of value, as spans of value."""
        found = [(*_secret_span(m, groups), self._rules.index(rule), kind)
                 for rule in rules for kind, _, regex, groups in (rule,) for m in regex.finditer(view)]
        if found and passes:  # back from the view to the text
            maps = _maps(value, passes)
            for k, (start, end, index, kind) in enumerate(found):
                for removals in reversed(maps):
                    start, end = _original(start, removals), _original(end, removals)
                found[k] = (start, end, index, kind)
        return found

    def rules_for(self, texts: list[str]) -> list:
        """The rules whose trigger occurs somewhere in texts (or in a text as a terminal
        shows it), in their order: one scan of them all for every rule's triggers."""
        return [self._rules[i] for i in sorted(self._indexes_in(texts))]

    def _indexes_in(self, texts: list[str]) -> set[int]:
        """The indexes of the rules whose trigger occurs in texts: one scan of them joined."""
        joined = "\0".join(texts)
        if _noisy(joined):
            joined = "\0".join(_shown_view(t)[0] for t in texts)
        joined = _joined_lines(joined)
        indexes: set[int] = set()
        for scan, members in self._triggers:
            for match in scan.finditer(joined):
                # the scan names one trigger at a place; others may stand there too ("-p" and
                # "sk-" at the "-" of "sk-proj-"): each member checked where the anchor stands
                at = match.start()
                for literal, offset in members:
                    if joined.startswith(literal, at - offset):
                        indexes.update(self._by_literal[literal])
        indexes.update(i for i, finds in self._custom if finds(joined))
        return indexes

    def _opening_indexes(self, text: str) -> frozenset[int]:
        """_indexes_in for a text that opens a conversation (a system prompt, a task's
        instruction, tool definitions): each trial of a task or an agent repeats them, so
        each is scanned once per process and remembered (up to OPENINGS_CHARS of them)."""
        found = self._openings.get(text)
        if found is None:
            found = self._openings.remember(text, frozenset(self._indexes_in([text])))
        return found

    def value(self, value: Any, rules: list | None = None) -> Any:
        """Redact every string inside a JSON value (tool-call arguments, tool definitions):
        keys too, the whole string value of a key that names a secret, and a string that is
        itself JSON (arguments passed as text) read as JSON."""
        if isinstance(value, str):
            decoded = _as_json(value)
            if decoded is not None:
                redacted = self.value(decoded, rules)
                return value if redacted == decoded else json.dumps(redacted, ensure_ascii=False)
            return self.text(value, rules)
        if isinstance(value, list):
            return [self.value(v, rules) for v in value]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if (isinstance(k, str) and isinstance(v, str) and SECRET_NAME.fullmatch(k)
                        and SECRET_VALUE.match(v)):
                    v = self.text(v, rules)
                    if not v.startswith("[REDACTED"):
                        self.counts["env_secret"] += 1
                        v = PLACEHOLDER.format("env_secret")
                out[self.text(k, rules) if isinstance(k, str) else k] = self.value(v, rules)
            return out
        return value

    def trace(self, trace: TrialTrace, turns: list[Turn] | None = None, extra: list[str] = ()) -> list[str]:
        """Redact a trial's texts in place, each turn once (episodes share turns); and the
        extra strings (its metadata), returned redacted: one trigger scan for all of them
        (the conversations' openings remembered, see _opening_indexes)."""
        turns = trace.unique_turns() if turns is None else turns
        openings = _openings(trace)
        texts = list(extra)
        add = texts.append
        for turn in turns:
            if turn.results:  # a tool turn's text is its results joined: scanned once, as them
                for call_id, text in turn.results:
                    add(text)
                    add(call_id or "")
            else:
                add(turn.text)
            if turn.reasoning:
                add(turn.reasoning)
            for call in turn.tool_calls:
                texts += (_json(call.arguments), call.name or "", call.id or "")
        # each text scanned once: subagents and continued segments repeat their first prompts
        # (hashing a text costs a fifteenth of scanning it)
        indexes = self._indexes_in([t for t in dict.fromkeys(texts) if t not in openings])
        for text in openings:
            indexes |= self._opening_indexes(text)
        if not indexes:
            return list(extra)
        rules = [self._rules[i] for i in sorted(indexes)]
        plain = not any(map(_noisy, texts))
        for conversation in trace.conversations:
            if conversation.tool_definitions:
                conversation.tool_definitions = self.value(conversation.tool_definitions, rules)
        if trace.instruction:
            trace.instruction = self.text(trace.instruction, rules)
        for turn in turns:
            if turn.results:  # a tool turn's text is its results joined
                turn.results = [(cid and self.text(cid, rules, plain), self.text(t, rules, plain))
                                for cid, t in turn.results]
                turn.text = "\n".join(t for _, t in turn.results)
            else:
                turn.text = self.text(turn.text, rules, plain)
            if turn.reasoning:
                turn.reasoning = self.text(turn.reasoning, rules, plain)
            for call in turn.tool_calls:
                call.arguments = self.value(call.arguments, rules)
                call.name = call.name and self.text(call.name, rules)
                call.id = call.id and self.text(call.id, rules)
        return [self.text(value, rules, plain) for value in extra]


def _openings(trace: TrialTrace) -> dict[str, None]:
    """The texts a trial shares with the other trials of its task or agent: the instruction,
    tool definitions, and each conversation's leading system and user turns."""
    found = {trace.instruction or "": None}
    for conversation in trace.conversations:
        if conversation.tool_definitions:
            found[_json(conversation.tool_definitions)] = None
        for turn in conversation.episodes[0].turns if conversation.episodes else ():
            if turn.role != "system" and turn.role != "user":
                break
            found[turn.text] = None
    return found


class _Remembered(dict):
    """text -> the indexes of the rules it triggers, forgotten all at once past OPENINGS_CHARS."""

    chars = 0

    def remember(self, text: str, indexes: frozenset[int]) -> frozenset[int]:
        if self.chars + len(text) > OPENINGS_CHARS:
            self.clear()
            self.chars = 0
        self[text] = indexes
        self.chars += len(text)
        return indexes


def _secret_span(match: re.Match, groups: tuple[str, ...]) -> tuple[int, int]:
    for name in groups:
        if match.group(name) is not None:
            return match.span(name)
    return match.span()


def _merged(spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans as one, named by the first rule among them."""
    out: list[list] = []
    for start, end, index, kind in sorted(spans):
        if out and start < out[-1][1]:
            last = out[-1]
            last[1] = max(last[1], end)
            if index < last[3]:
                last[2], last[3] = kind, index
        elif end > start:
            out.append([start, end, kind, index])
    return [(start, end, kind) for start, end, kind, _ in out]


def _shown_view(value: str) -> tuple[str, int]:
    """The text as a terminal shows it (escape sequences removed, \\uXXXX decoded, a carriage
    return a line break), and the passes that made it (see _maps): most texts need none.
    text() also matches it with each long line joined to the next (a
    terminal's wraps). Built in C (re.sub); mapped back only where a secret is found."""
    if not _noisy(value):
        return value, 0
    return _NOISE.sub(_shown, value), 1


def _noisy(value: str) -> bool:
    # single characters are found by memchr; a two-character `in` costs as much as a regex
    return "\x1b" in value or "\r" in value or ("\\" in value and _ESCAPED(value) is not None)


def _joined_lines(text: str) -> str:
    """text with each long line joined to the next: a trigger that a terminal's wrap split
    ("g\\nhp_") is whole there, and no trigger is broken (none holds a line break)."""
    return _WRAP.sub("", text)


def _shown(match: re.Match) -> str:
    if match.group(1) is not None:
        return chr(int(match.group(1), 16))
    return "\n" if match.group()[0] == "\r" else ""  # \r and \r\n: a line break


def _maps(value: str, passes: int) -> list[list[tuple[int, int]]]:
    """The removals that map a view back to value, one list per pass that made the view
    (escapes, if value has any; then wraps, if passes says so): (view position, characters
    removed up to there)."""
    maps = []
    base = value
    if _noisy(value):
        base, removals = _removed(value, _NOISE)
        maps.append(removals)
    if passes > len(maps):
        maps.append(_removed(base, _WRAP)[1])
    return maps


def _removed(value: str, pattern: re.Pattern) -> tuple[str, list[tuple[int, int]]]:
    """value as pattern's pass leaves it, and the removals of that pass."""
    parts, removals, pos, length, total = [], [], 0, 0, 0
    for m in pattern.finditer(value):
        start, end = m.span()
        kept = "" if pattern is _WRAP else _shown(m)
        parts += (value[pos:start], kept)
        length += start - pos + len(kept)
        total += end - start - len(kept)
        if end - start != len(kept):
            removals.append((length, total))
        pos = end
    parts.append(value[pos:])
    return "".join(parts), removals


def _original(position: int, removals: list[tuple[int, int]]) -> int:
    """A position of the view in the text it came from: after everything removed at or before it."""
    i = bisect.bisect_right(removals, (position, float("inf")))
    return position + (removals[i - 1][1] if i else 0)


def _as_json(value: str) -> Any:
    if len(value) < 2 or value[0] not in "{[" or value[-1] not in "}]":
        return None
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, (dict, list)) else None


@functools.lru_cache(maxsize=8)
def _compile(extra_patterns: tuple[str, ...]) -> tuple[list, Any, dict[str, set[int]], _Remembered]:
    """(rules, the scan for every trigger, trigger -> the rules it calls for, the openings
    scanned), compiled once
    per process (a worker makes a Redactor per task; forked workers inherit them compiled).
    A rule is (kind, whether a text holds one of its triggers, regex, secret groups)."""
    rules = []
    literals: dict[str, set[int]] = {}
    for index, (kind, triggers, pattern) in enumerate(secrets.PATTERNS):
        regex = re.compile(pattern)
        groups = tuple(g for g in ("s", "s2", "s3", "s4", "s5") if g in regex.groupindex)
        rules.append((kind, _finder(triggers), regex, groups))
        for literal in triggers:
            literals.setdefault(literal, set()).add(index)
    # a trigger that holds another ("sk-ant-" holds "sk-") calls for that one's rules too
    by_literal = {lit: set().union(*(ids for other, ids in literals.items() if other in lit))
                  for lit in literals}
    scans = _anchored_scans(list(literals))
    for pattern in extra_patterns:
        regex = re.compile(pattern)
        rules.append(("custom", regex.search, regex, ()))
    return rules, scans, by_literal, _Remembered()


# characters a scan may stop at, rarest in agent traces first: a scan is one pass over the
# text that stops only where its anchor character stands (re finds a pattern's leading
# literal in C), so all triggers are found in as few passes as there are anchors used
ANCHORS = "_-/AKE.JBea"
RARITY = "KJQXZVWYUFGHMBPLDCNROIASTE" + "zqjxkvbywgpfmucdlhrsnioate" + "9876543210=\"':@#"


def _anchored_scans(literals: list[str]) -> list[tuple[re.Pattern, list[str]]]:
    """Scans that together find every trigger in the text: the triggers grouped by an anchor
    character they hold (the first of ANCHORS, or their rarest), each group one pattern that
    stops only at its anchor; there, what follows is matched as literals first (re rejects
    a literal by its first character), then what stands before by lookbehinds. A scan's
    matches are where triggers stand; its members are (trigger, offset of the anchor in it)."""
    groups: dict[str, list[str]] = {}
    for literal in literals:
        anchor = next((c for c in ANCHORS if c in literal), None) or \
            min(literal, key=lambda c: RARITY.find(c) % (len(RARITY) + 1))
        groups.setdefault(anchor, []).append(literal)
    scans = []
    for anchor, members in groups.items():
        ahead = sorted((m for m in members if m.partition(anchor)[2]), key=len, reverse=True)
        behind = sorted((m for m in members if not m.partition(anchor)[2]), key=len, reverse=True)
        alternatives = [re.escape(m.partition(anchor)[2]) + f"(?<={re.escape(m)})" * bool(m.partition(anchor)[0])
                        for m in ahead]
        if behind:  # the character before the anchor first: most stops end there
            before = "".join(sorted({re.escape(m[-2]) for m in behind}))
            alternatives.append(f"(?<=[{before}]{re.escape(anchor)})(?:"
                                + "|".join(f"(?<={re.escape(m)})" for m in behind) + ")")
        scans.append((re.compile(re.escape(anchor) + "(?:" + "|".join(alternatives) + ")"),
                      [(m, m.index(anchor)) for m in ahead + behind]))
    return scans


def _finder(triggers: tuple[str, ...]) -> Callable[[str], Any]:
    """Whether a text holds one of the triggers (truthy), in one scan. A compiled literal
    beats `in` here: re skips to each occurrence of the literal's first character in C."""
    return re.compile("|".join(map(re.escape, triggers))).search


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # nested deeper than orjson writes (255 levels)
        return json.dumps(value, default=str, ensure_ascii=False)
