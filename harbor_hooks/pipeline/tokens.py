"""--tokenizer: a row's tokens and loss labels, from a local tokenizer and its chat template.

`labels` are -100 except on the tokens of the row's trained assistant messages (the `train`
flag; --train-on). Where the template marks what the assistant generates
(`{% generation %}`), the marks are used; otherwise each trained message's tokens are
found by rendering the conversation up to it: what the message adds to the text is its
span, and the tokens whose characters lie there are labelled.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

from harbor_hooks.errors import SettingsError
from harbor_hooks.formats import row_messages
from harbor_hooks.report import ExportReport

IGNORE = -100
GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")  # a template's marks of what the assistant generates


@functools.lru_cache(maxsize=2)
def load_tokenizer(path: str) -> Any:
    """The tokenizer of a local folder (never fetched from a hub), once per process."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template")
    return tokenizer


def check_tokenizer(path: os.PathLike) -> None:
    """Load the tokenizer before any work (forked workers inherit it): a folder that holds
    none, or one without a chat template, is a usage error."""
    try:
        load_tokenizer(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"--tokenizer {os.fspath(path)}: no usable tokenizer ({reason})") from None


def template_messages(row: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """A row's messages and tools as a chat template takes them: arguments and tool
    definitions as objects, no key without a value."""
    messages = []
    for message in row_messages(row):
        message = {k: v for k, v in message.items() if v is not None}
        if "tool_calls" in message:
            message["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in message["tool_calls"]]
        messages.append(message)
    tools = row.get("tools")
    if isinstance(tools, str):
        tools = json.loads(tools)
    elif tools is not None:
        tools = [json.loads(t) for t in tools]
    return messages, tools


def add_token_columns(row: dict[str, Any], tokenizer: Any, report: ExportReport) -> bool:
    """Add input_ids, labels and n_tokens to row; False (the row skipped, counted) when the
    template cannot render it."""
    if "messages" not in row and "prompt" not in row:
        raise ValueError("--tokenizer needs --schema messages or prompt-completion")
    messages, tools = template_messages(row)
    try:
        ids, labels = _labelled(tokenizer, messages, tools)
    except Exception as exc:  # noqa: BLE001 - the template's own error (a raise_exception)
        report.skip("row", str(row.get("source_path")),
                    f"{row.get('episode')}: the chat template cannot render it ({type(exc).__name__}: {exc})")
        return False
    row.update(input_ids=ids, labels=labels, n_tokens=len(ids))
    return True


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: list[Any] | None, **kwargs: Any) -> Any:
    return tokenizer.apply_chat_template(messages, tools=tools, **kwargs)


def _labelled(tokenizer: Any, messages: list[dict[str, Any]], tools: list[Any] | None) -> tuple[list[int], list[int]]:
    trained = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("train")]
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if GENERATION.search(tokenizer.chat_template):
        out = _render(tokenizer, messages, tools, tokenize=True, return_dict=True,
                      return_assistant_tokens_mask=True)
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        runs = _runs(mask)
        if len(runs) == len(assistants):  # one marked run per assistant message, in order
            labels = [IGNORE] * len(ids)
            for (start, end), index in zip(runs, assistants):
                if index in trained:
                    labels[start:end] = ids[start:end]
            return ids, labels
    text = _render(tokenizer, messages, tools, tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    labels = [IGNORE] * len(ids)
    for index in trained:
        start = len(_render(tokenizer, messages[:index], tools, tokenize=False, add_generation_prompt=True))
        upto = _render(tokenizer, messages[:index + 1], tools, tokenize=False)
        if not text.startswith(upto) or start > len(upto):
            raise ValueError(f"message {index} renders differently as the conversation goes on")
        for k, (a, b) in enumerate(offsets):
            if start <= a and b <= len(upto) and b > a:
                labels[k] = ids[k]
    return ids, labels


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for k, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = k
        elif not bit and start is not None:
            runs.append((start, k))
            start = None
    return runs
