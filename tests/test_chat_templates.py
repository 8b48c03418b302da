"""`--schema messages` rows rendered through real models' chat templates (the publishers'
originals, tests/data/chat_templates/README.md) with transformers' apply_chat_template.

Rows of the sample job (terminus-2 episodes and ATIF with a summarization hand-off) and of
a tool-calling job (parallel calls answered out of order, reasoning) are exported by the
CLI to JSONL and read back as a trainer would. In every rendering: no error is caused by
the data, arguments appear as JSON objects (never as an escaped string), each tool result
comes right after its own call, and no message's text is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_JOB, read_jsonl, run_cli

transformers = pytest.importorskip("transformers")

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
TOOL_JOB = Path(__file__).parent / "data" / "tool-job"
# what each template renders of a message by design: gpt-oss and Qwen3-Coder's template do not
# show a message's reasoning (gpt-oss keeps it for the turn being generated only); DeepSeek's
# shows no tool definitions
SHOWS_REASONING = {"qwen2.5": False, "qwen3-coder": False, "llama-3.1": False, "hermes-tool-use": False,
                   "deepseek-v3.1": False, "gpt-oss": False, "mistral": False}
# templates that show an assistant message's tool calls and not its text beside them (gpt-oss
# shows that text as the analysis channel only until a final answer follows, by design)
DROPS_TEXT_BESIDE_CALLS = {"llama-3.1", "hermes-tool-use", "gpt-oss", "mistral"}
FIRST_CALL_ONLY = {"gpt-oss"}  # renders message.tool_calls[0] (one call per message, by design)


def tokenizer(template: str):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({"[UNK]": 0, "<s>": 1, "</s>": 2}, unk_token="[UNK]"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="[UNK]")
    fast.chat_template = (TEMPLATES / f"{template}.jinja").read_text(encoding="utf-8")
    return fast


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("templates")
    found = {}
    for name, job, flags in (("sample", SAMPLE_JOB, ()), ("tools", TOOL_JOB, ()),
                             ("sample-alternating", SAMPLE_JOB, ("--alternate-roles",)),
                             ("tools-alternating", TOOL_JOB, ("--alternate-roles",)),
                             ("tools-inline", TOOL_JOB, ("--alternate-roles", "--reasoning", "inline")),
                             ("sample-one", SAMPLE_JOB, ("--alternate-roles", "--one-call-per-turn")),
                             ("tools-one", TOOL_JOB, ("--alternate-roles", "--one-call-per-turn"))):
        target = out / f"{name}.jsonl"
        run_cli("traces", "export", "-p", str(job), "--schema", "messages", "-o", str(target), *flags, check=True)
        found[name] = read_jsonl(target)
    return found


def render(template: str, row: dict, messages: list[dict] | None = None) -> str:
    messages = row["messages"] if messages is None else messages
    return tokenizer(template).apply_chat_template(messages, tools=row.get("tools"), tokenize=False)


def arguments_of(row: dict) -> list[dict]:
    return [c["function"]["arguments"] for m in row["messages"] for c in m.get("tool_calls", ())]


def check_rendering(template: str, row: dict, text: str, whole: bool = False) -> None:
    """whole: the template is given rows it shows entirely (no exemption by design)."""
    for args in arguments_of(row):
        assert isinstance(args, dict)
        # an argument JSON-encoded twice would show its keys escaped: {\"cmd\": ...}
        for key in args:
            assert f'\\"{key}\\"' not in text, (template, key)
            assert key in text, (template, key)
    for message in row["messages"]:
        if message.get("tool_calls") and template in DROPS_TEXT_BESIDE_CALLS and not whole:
            continue
        if message["content"].strip():
            for line in message["content"].strip().splitlines():
                assert shown(line.strip(), text), (template, message["role"], line[:80])
        if SHOWS_REASONING[template] and message.get("reasoning_content"):
            assert message["reasoning_content"].strip() in text
    # each result right after its own call: every message's text found in the rendering in
    # the row's order (a call by its first argument's value), so a result lies between its
    # call and the next message
    position = 0
    for message in row["messages"]:
        anchors = []
        calls = message.get("tool_calls", ())
        for call in calls[:1] if template in FIRST_CALL_ONLY and not whole else calls:
            values = [v for v in call["function"]["arguments"].values() if isinstance(v, str) and v.strip()]
            anchors += [values[0].strip().splitlines()[0]] if values else []
        if not (message.get("tool_calls") and template in DROPS_TEXT_BESIDE_CALLS and not whole) \
                and message["content"].strip():
            anchors.insert(0, message["content"].strip().splitlines()[0].strip())
        for anchor in anchors:
            found = [at for at in (text.find(anchor, position), text.find(json.dumps(anchor)[1:-1], position))
                     if at >= 0]
            assert found, (template, message["role"], "out of order", anchor[:60])
            position = min(found)


def shown(line: str, text: str) -> bool:
    """line is in text, as it is or JSON-escaped (gpt-oss writes a tool result with tojson)."""
    return line in text or json.dumps(line)[1:-1] in text


PLAIN = ["qwen2.5", "qwen3-coder", "hermes-tool-use"]


@pytest.mark.parametrize("template", PLAIN)
@pytest.mark.parametrize("job", ["sample", "tools"])
def test_rows_render_through_real_templates(rows, template, job):
    rendered = 0
    for row in rows[job]:
        if template == "hermes-tool-use" and row["tools"] is None:
            continue  # Hermes' tool_use variant is the one transformers picks when tools are given
        check_rendering(template, row, render(template, row))
        rendered += 1
    assert rendered or template == "hermes-tool-use"


def test_parallel_results_come_in_call_order(rows):
    """tool-job: toolu_01 and toolu_02 are called together, answered toolu_02 first."""
    row = max(rows["tools"], key=lambda r: len(r["messages"]))
    roles = [(m["role"], m.get("tool_call_id")) for m in row["messages"]]
    first = roles.index(("tool", "toolu_01"))
    assert roles[first + 1] == ("tool", "toolu_02")
    text = render("qwen2.5", row)
    results = [m["content"] for m in row["messages"] if m["role"] == "tool"]
    assert text.index(results[0]) < text.index(results[1])


def test_llama_3_1_renders_every_row_with_one_call_per_turn(rows):
    """Llama 3.1's template takes one tool call per assistant turn ("This model only supports
    single tool-calls at once!"): every other row renders; a row with parallel calls fails
    with that message of the template's, not with an error about the data's shape."""
    for row in rows["sample"] + rows["tools"]:
        if any(len(m.get("tool_calls", ())) > 1 for m in row["messages"]):
            with pytest.raises(Exception, match="single tool-calls"):
                render("llama-3.1", row)
            continue
        check_rendering("llama-3.1", row, render("llama-3.1", row))


def test_deepseek_v3_1_with_arguments_as_its_api_writes_them(rows):
    """DeepSeek-V3.1's template concatenates a call's arguments as text (its API gives them
    as a JSON string): given that text, the rendering shows each as a JSON object."""
    for row in rows["sample"] + rows["tools"]:
        messages = [dict(m, tool_calls=[{**c, "function": {**c["function"], "arguments": json.dumps(
            c["function"]["arguments"])}} for c in m["tool_calls"]]) if "tool_calls" in m else m
            for m in row["messages"]]
        text = render("deepseek-v3.1", row, messages)
        for args in arguments_of(row):
            assert json.dumps(args) in text
        for message in row["messages"]:
            for line in message["content"].strip().splitlines():
                assert line.strip() in text


@pytest.mark.parametrize("job", ["sample-alternating", "tools-alternating"])
def test_mistral_renders_with_alternate_roles(rows, job):
    for row in rows[job]:
        text = render("mistral", row)  # the template checks the alternation itself
        for args in arguments_of(row):
            assert json.dumps(args, ensure_ascii=False) in text
        # Mistral-Nemo shows the system message only before a conversation's last user turn
        # (when generating), and no text beside tool calls: both by design
        check_rendering("mistral", dict(row, messages=[m for m in row["messages"] if m["role"] != "system"]), text)


@pytest.mark.parametrize("job", ["sample", "tools"])
def test_mistral_refuses_rows_without_alternate_roles(rows, job):
    """Without --alternate-roles the sample job's consecutive user turns fail Mistral's check:
    the option is what makes them render."""
    failed = 0
    for row in rows[job]:
        try:
            render("mistral", row)
        except Exception as exc:  # noqa: BLE001 - the template's raise_exception
            assert "alternate" in str(exc) or "9" in str(exc)
            failed += 1
    assert failed


@pytest.mark.parametrize("job", ["sample-alternating", "tools-alternating", "tools-inline"])
def test_gpt_oss_renders_with_alternate_roles(rows, job):
    """gpt-oss shows only the first system message (later ones vanish: --alternate-roles makes
    them user text), and refuses a message with text, reasoning and tool calls at once
    ("Cannot pass both content and thinking"): such rows fail with that message of the
    template's, and render whole with --reasoning inline; every other row renders whole."""
    rendered = 0
    for row in rows[job]:
        if any(m.get("tool_calls") and m["content"] and m.get("reasoning_content") for m in row["messages"]):
            with pytest.raises(Exception, match="both content and thinking"):
                render("gpt-oss", row)
            continue
        check_rendering("gpt-oss", row, render("gpt-oss", row))
        rendered += 1
    assert rendered or job == "tools-alternating"  # its first step has text, reasoning and calls
    if job == "tools-inline":
        assert rendered == len(rows[job])


@pytest.mark.parametrize("template", ["llama-3.1", "hermes-tool-use", "gpt-oss", "qwen2.5", "qwen3-coder"])
@pytest.mark.parametrize("job", ["sample-one", "tools-one"])
def test_one_call_per_turn_renders_every_row_whole(rows, template, job):
    """--one-call-per-turn (with --alternate-roles): each call its own message answered before
    the next, the text beside calls a message before them; Llama-3.1, Hermes and gpt-oss,
    which show one call per message and nothing beside it, then render every row with no
    error and every message's text, as do the others."""
    rendered = 0
    for row in rows[job]:
        assert all(len(m.get("tool_calls", ())) <= 1 for m in row["messages"])
        assert not any(m.get("tool_calls") and m["content"] for m in row["messages"])
        if template == "hermes-tool-use" and row["tools"] is None:
            continue
        check_rendering(template, row, render(template, row), whole=True)
        rendered += 1
    assert rendered or template == "hermes-tool-use"
