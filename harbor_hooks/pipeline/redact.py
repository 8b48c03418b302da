"""Secret redaction: provider keys, auth headers, private keys, env-style assignments.

Each match is replaced by a stable placeholder naming its kind, and counted.
User patterns (settings `redact_patterns`) run after the built-in ones, as kind "custom".
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from harbor_hooks.readers.trace import TrialTrace, Turn

PLACEHOLDER = "[REDACTED:{}]"

# (kind, triggers, pattern). The triggers are literals, one of which every match contains
# (one fast scan); the full pattern runs only where a trigger is found. A leading group (the
# "Bearer " of a header, the NAME= of an assignment) is kept. Specific kinds run first
# (Anthropic keys also start with sk-; a bearer token may be an OpenAI key).
# Each trigger starts where a scan stops least and shares its first character with other
# rules' triggers: rules whose triggers start alike share one scan (see _compile), and a
# scan for a literal stops at every occurrence of its first character ("k-" stops at each
# k, "sk-" at each s: four times as often in English). 6 scans for 11 rules.
PATTERNS: list[tuple[str, tuple[str, ...], str]] = [
    ("private_key", ("IVATE KEY",),
     r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)"),
    ("anthropic", ("k-ant-",), r"\bsk-ant-[A-Za-z0-9]{2,8}-[A-Za-z0-9_\-]{20,}"),
    ("openai", ("k-",), r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}"),
    ("huggingface", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}"),
    ("google", ("Iza",), r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("aws_access_key", ("IA",), r"\bA[KS]IA[0-9A-Z]{16}\b"),
    ("github", ("hp_", "ho_", "hu_", "hs_", "hr_", "hub_pat_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack", ("xox",), r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("bearer", ("arer",), r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    ("basic_auth", ("asic",), r"(\b[Bb]asic\s+)[A-Za-z0-9+/]{8,}={0,2}"),
    # NAME=value, NAME: value, "NAME": "value", and the same JSON-escaped, once or more
    ("env_secret", ("_KEY", "_TOKEN", "_SECRET", "_PASS"),
     r"(\b[A-Za-z0-9_]*(?:_KEY|_TOKEN|_SECRET|_PASSWORD|_PASSWD)(?:\\*[\"'])?\s*[=:]\s*(?:\\*[\"'])?)"
     r"(?!\[REDACTED)[^\s\"'\\,;}]{4,}"),
]
# a JSON object key naming a secret: its string value is one ({"env": {"DB_SECRET": "..."}})
SECRET_NAME = re.compile(r"[A-Za-z0-9_]*(?:_KEY|_TOKEN|_SECRET|_PASSWORD|_PASSWD)")


class Redactor:
    """Replaces secrets in texts and counts them per kind (in .counts)."""

    def __init__(self, extra_patterns: list[str] | tuple[str, ...] = ()):
        self._rules, self._scans = _compile(tuple(extra_patterns))
        self.counts: Counter = Counter()

    def text(self, value: str, rules: list | None = None) -> str:
        if not value:
            return value
        for kind, found, regex, replacement in self._rules if rules is None else rules:
            if not found(value):
                continue
            value, n = regex.subn(replacement, value)
            if n:
                self.counts[kind] += n
        return value

    def rules_for(self, texts: list[str]) -> list:
        """The rules whose trigger occurs somewhere in texts, in their order: one scan per
        group of rules over all the texts, then one per rule of a group found."""
        joined = "\0".join(texts)
        found = []
        for scan, members in self._scans:
            if scan(joined):
                found.extend(rule for rule, own in members if own or rule[1](joined))
        return sorted(found, key=self._rules.index) if len(found) > 1 else found

    def value(self, value: Any, rules: list | None = None) -> Any:
        """Redact every string inside a JSON value (tool-call arguments, tool definitions):
        keys too, and the whole string value of a key that names a secret."""
        if isinstance(value, str):
            return self.text(value, rules)
        if isinstance(value, list):
            return [self.value(v, rules) for v in value]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if (isinstance(k, str) and isinstance(v, str) and len(v) >= 4
                        and SECRET_NAME.fullmatch(k) and not v.startswith("[REDACTED")):
                    v = self.text(v, rules)
                    if not v.startswith("[REDACTED"):
                        self.counts["env_secret"] += 1
                        v = PLACEHOLDER.format("env_secret")
                out[self.text(k, rules) if isinstance(k, str) else k] = self.value(v, rules)
            return out
        return value

    def trace(self, trace: TrialTrace, turns: list[Turn] | None = None) -> None:
        """Redact a trial's texts in place; each turn once (episodes share turns)."""
        turns = trace.unique_turns() if turns is None else turns
        texts = []
        instruction = trace.instruction
        # the instruction is the text of one of the first messages, stripped: scanned as part
        # of that turn (it was a quarter of a short trial's text)
        if instruction and not any(instruction in turn.text for turn in turns[:3]):
            texts.append(instruction)
        for turn in turns:
            if turn.results:  # a tool turn's text is its results joined: scanned once, as them
                texts.extend(t for _, t in turn.results)
            else:
                texts.append(turn.text)
            texts.append(turn.reasoning or "")
            for call in turn.tool_calls:
                texts.append(_json(call.arguments))
                texts.append(call.name or "")
        texts.extend(_json(c.tool_definitions) for c in trace.conversations if c.tool_definitions)
        # each text scanned once: subagents and continued segments repeat their first prompts
        # and tool definitions (a third of the benchmark job's text); hashing a text costs a
        # fifteenth of scanning it
        rules = self.rules_for(list(dict.fromkeys(texts)))
        if not rules:
            return
        for conversation in trace.conversations:
            if conversation.tool_definitions:
                conversation.tool_definitions = self.value(conversation.tool_definitions, rules)
        if trace.instruction:
            trace.instruction = self.text(trace.instruction, rules)
        for turn in turns:
            if turn.results:  # a tool turn's text is its results joined
                turn.results = [(cid, self.text(t, rules)) for cid, t in turn.results]
                turn.text = "\n".join(t for _, t in turn.results)
            else:
                turn.text = self.text(turn.text, rules)
            if turn.reasoning:
                turn.reasoning = self.text(turn.reasoning, rules)
            for call in turn.tool_calls:
                call.arguments = self.value(call.arguments, rules)
                if call.name:
                    call.name = self.text(call.name, rules)


@functools.lru_cache(maxsize=8)
def _compile(extra_patterns: tuple[str, ...]) -> tuple[list, list]:
    """(rules, scans) of the built-in patterns and extra_patterns, compiled once per process
    (a worker makes a Redactor per task; forked workers inherit them compiled)."""
    rules = []
    for kind, triggers, pattern in PATTERNS:
        regex = re.compile(pattern)
        keep = r"\1" if regex.groups else ""
        rules.append((kind, _finder(triggers), regex, keep + PLACEHOLDER.format(kind)))
    # the rules whose triggers all start with one character share a first scan for any
    # of their triggers (re factors that character out: still one literal search); only
    # when it finds one does each of them scan for its own, unless the scan was its own
    by_first: dict[str, list[int]] = {}
    for i, (kind, triggers, _) in enumerate(PATTERNS):
        by_first.setdefault(_first_character(triggers) or kind, []).append(i)
    # (scan, [(rule, whether the scan's finding is the rule's own)])
    scans: list[tuple[Callable[[str], Any], list]] = []
    for members in by_first.values():
        triggers = {t for i in members for t in PATTERNS[i][1]}
        # a trigger that holds another is found by the scan for that one
        scanned = {t for t in triggers if not any(o != t and o in t for o in triggers)}
        scans.append((_finder(tuple(sorted(scanned))),
                      [(rules[i], set(PATTERNS[i][1]) == scanned) for i in members]))
    for pattern in extra_patterns:
        regex = re.compile(pattern)
        rule = ("custom", regex.search, regex, PLACEHOLDER.format("custom"))
        rules.append(rule)
        scans.append((regex.search, [(rule, True)]))
    return rules, scans


def _finder(triggers: tuple[str, ...]) -> Callable[[str], Any]:
    """Whether a text holds one of the triggers (truthy), in one scan. A compiled literal
    beats `in` here: re skips to each occurrence of the literal's first character in C,
    while `in` on a short needle advances a few characters a step (on the benchmark's
    texts: 0.3 vs 0.5-0.7 ns a character), and an alternation is still one scan."""
    return re.compile("|".join(map(re.escape, triggers))).search


def _first_character(triggers: tuple[str, ...]) -> str | None:
    """The character all the triggers start with, or None."""
    firsts = {t[0] for t in triggers}
    return firsts.pop() if len(firsts) == 1 else None


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # nested deeper than orjson writes (255 levels)
        return json.dumps(value, default=str, ensure_ascii=False)
