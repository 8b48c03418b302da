"""TRL's conversational prompt-completion rows: `prompt` the messages before the trained
assistant turn(s), `completion` those turns (with what lies between them), and tools."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from harbor_hooks.formats import messages as chat
from harbor_hooks.formats.arrow import CHAT_MESSAGE, TOOLS
from harbor_hooks.options import ExportOptions

render = chat.render
tools_column = chat.tools_column


def columns(messages: list[dict[str, Any]], tools: list[str] | None, opts: ExportOptions,
            counts: Counter) -> dict[str, Any]:
    """--train-on last: the completion is the last assistant message; all: from the first
    assistant message to the last (a row with none has an empty completion, and is dropped)."""
    messages = chat.shaped(messages, opts, counts)
    at = [i for i, m in enumerate(messages) if m.get("train")]
    if not at:
        return {"prompt": messages, "completion": [], "tools": tools}
    return {"prompt": messages[:at[0]], "completion": messages[at[0]:at[-1] + 1], "tools": tools}


def arrow_fields(opts: ExportOptions) -> tuple[list, list, list]:
    return [("prompt", pa.list_(CHAT_MESSAGE)), ("completion", pa.list_(CHAT_MESSAGE)), ("tools", TOOLS)], [], []
