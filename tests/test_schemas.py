"""The beyond-Harbor schemas: messages (OpenAI/TRL), llamafactory, trajectory rows, filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_JOB, run_cli
from harbor_hooks import export_traces

TOOL_JOB = Path(__file__).parent / "data" / "tool-job"
TEMPLATE = Path(__file__).parent / "data" / "tool_chat_template.jinja"


def step_texts(job: Path) -> list[str]:
    """Every text an ATIF trial holds: messages, reasoning, call names/arguments, results."""
    texts = []
    for path in sorted(job.rglob("trajectory*.json")):
        for step in json.loads(path.read_text())["steps"]:
            message = step.get("message")
            if isinstance(message, list):
                message = "".join(p.get("text", "") for p in message)
            texts.append(message or "")
            texts.append(step.get("reasoning_content") or "")
            for call in step.get("tool_calls") or []:
                texts.append(call["function_name"])
                texts.extend(str(v) for v in call["arguments"].values())
            for result in (step.get("observation") or {}).get("results", []):
                content = result.get("content")
                if isinstance(content, list):
                    content = "".join(p.get("text", "") for p in content)
                texts.append(content or "")
    return [t for t in texts if t]


def all_text(rows: list[dict], column: str) -> str:
    return json.dumps([r[column] for r in rows], ensure_ascii=False) + "".join(
        m.get("content") or "" for r in rows for m in r[column] if isinstance(m, dict))


@pytest.fixture(scope="module")
def messages_rows() -> list[dict]:
    return export_traces(str(TOOL_JOB), schema="messages", workers=1, redact=False).to_list()


def test_messages_schema_tool_calls_and_results(messages_rows):
    assert len(messages_rows) == 4  # four agent steps, four episode rows
    last = messages_rows[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "tool", "assistant",
                                         "tool", "assistant", "tool", "assistant"]
    calls = {c["id"]: c for m in last if m["tool_calls"] for c in m["tool_calls"]}
    answered = [m["tool_call_id"] for m in last if m["role"] == "tool"]
    assert answered == ["toolu_01", "toolu_02", "toolu_03", "toolu_04"]  # in call order (observed 02 first)
    assert set(answered) <= set(calls)
    assert calls["toolu_01"]["type"] == "function"
    assert calls["toolu_01"]["function"] == {"name": "bash", "arguments": {"cmd": "cat tests/test_math.py"}}
    assert last[4]["content"] == "def add(a, b):\n    return a - b\n"  # toolu_02's, paired by id
    assert last[2]["reasoning_content"] == "First inspect both files."
    assert last[6]["content"] == "Edited src/math.py: 1 replacement."  # both content parts
    tools = messages_rows[0]["tools"]  # a list of objects
    assert [t["function"]["name"] for t in tools] == ["bash", "edit_file", "submit"]
    assert messages_rows[-1]["n_tool_calls"] == 5 and messages_rows[-1]["prompt_tokens"] == 4450


def test_messages_schema_loses_no_step_text(messages_rows):
    text = all_text(messages_rows, "messages")
    for piece in step_texts(TOOL_JOB):
        assert piece in text or json.dumps(piece)[1:-1] in text, piece


def test_reasoning_inline():
    rows = export_traces(str(TOOL_JOB), schema="messages", reasoning="inline", workers=1).to_list()
    assistant = rows[0]["messages"][2]
    assert assistant["reasoning_content"] is None
    assert assistant["content"].startswith("<think>First inspect both files.</think>\n")


def test_chat_template_renders_messages_with_tools(messages_rows):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend,
                                                     chat_template=TEMPLATE.read_text())
    row = messages_rows[-1]
    rendered = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
    assert rendered.count("<|im_start|>assistant") == 4
    assert '<tool_call id="toolu_03">\n{"name": "edit_file", "arguments": {"path": "src/math.py"' in rendered
    assert '<tool_response id="toolu_02">\ndef add(a, b):' in rendered
    assert '"name": "submit"' in rendered.split("</tools>")[0]
    for piece in step_texts(TOOL_JOB):
        assert piece in rendered or json.dumps(piece)[1:-1] in rendered, piece


def test_llamafactory_layout():
    rows = export_traces(str(TOOL_JOB), schema="llamafactory", rows="trajectory", workers=1).to_list()
    assert len(rows) == 1
    row = rows[0]
    assert row["system"] == "You are a software engineer. Use the tools to fix the bug."
    roles = [m["from"] for m in row["conversations"]]
    assert roles == ["human", "function_call", "observation", "function_call", "observation",
                     "function_call", "observation", "function_call"]
    assert all(r in ("human", "observation") for r in roles[0::2])
    assert all(r in ("gpt", "function_call") for r in roles[1::2])
    first_call = row["conversations"][1]["value"]
    thought, calls = first_call.split("\n</think>\n\n")
    assert thought == "<think>\nFirst inspect both files.\n\nLet me look at the failing test and the source."
    assert json.loads(calls) == [{"name": "bash", "arguments": {"cmd": "cat tests/test_math.py"}},
                                 {"name": "bash", "arguments": {"cmd": "cat src/math.py"}}]
    assert json.loads(row["tools"])[0]["function"]["name"] == "bash"
    text = json.dumps(row["conversations"], ensure_ascii=False) + row["system"]
    for piece in step_texts(TOOL_JOB):
        assert piece in text or json.dumps(piece, ensure_ascii=False)[1:-1] in text, piece


def test_each_schema_on_the_sample_job(tmp_path):
    for schema in ("harbor", "messages", "llamafactory", "prompt-completion"):
        out = tmp_path / f"{schema}.jsonl"
        proc = run_cli("traces", "export", "--sample", "--schema", schema, "-o", str(out), check=True)
        assert "Exported 35 rows" in proc.stdout
    rows = [json.loads(line) for line in (tmp_path / "messages.jsonl").read_text().splitlines()]
    terminus = [r for r in rows if r["trial_name"] == "fix-git__Ep1s0dA"][-1]["messages"]
    # episode-folder (terminus) agents have no structured tool calls: plain assistant text
    assert {m["role"] for m in terminus} == {"user", "assistant"}
    assert all("tool_calls" not in m for m in terminus)  # JSONL: no null keys


def test_trajectory_rows_are_whole_conversations_and_smaller():
    episode = export_traces(str(SAMPLE_JOB), workers=1)
    trajectory = export_traces(str(SAMPLE_JOB), rows="trajectory", workers=1)
    # one row per conversation segment: 6 main chains (one with a continuation) + 3 subagents
    assert len(trajectory) == 6 + 1 + 3
    size = lambda ds: sum(len(m["content"]) for r in ds["conversations"] for m in r)
    assert size(trajectory) < size(episode) / 2
    longest = max(trajectory["conversations"], key=len)
    assert longest[-1]["role"] == "assistant"


def test_filters_and_dedupe(tmp_path):
    base = export_traces(str(SAMPLE_JOB), workers=1)
    assert len(export_traces(str(SAMPLE_JOB), min_reward=0.5, workers=1)) == 18
    assert len(export_traces(str(SAMPLE_JOB), exclude_exceptions=True, workers=1)) == len(base) - 3
    assert set(export_traces(str(SAMPLE_JOB), tasks=["fix-*"], workers=1)["task"]) == {"fix-git"}
    assert len(export_traces(str(SAMPLE_JOB), agents=["claude-*"], workers=1)) == 0
    assert set(export_traces(str(SAMPLE_JOB), models=["gpt-4o"], workers=1)["model"]) == {"gpt-4o"}
    assert max(export_traces(str(SAMPLE_JOB), max_turns=3, workers=1)["n_turns"]) == 3
    short = export_traces(str(SAMPLE_JOB), max_chars=5000, workers=1)
    assert 0 < len(short) < len(base)
    # a job holding the same trial twice: --dedupe drops the copies, and counts them
    import shutil
    job = tmp_path / "job"
    shutil.copytree(SAMPLE_JOB / "hello-world__Inv4l1d", job / "a" / "hello-world__Inv4l1d")
    shutil.copytree(SAMPLE_JOB / "hello-world__Inv4l1d", job / "b" / "hello-world__Inv4l1d")
    proc = run_cli("traces", "export", "-p", str(job), "--dedupe", "-o", str(tmp_path / "d.jsonl"),
                   check=True)
    assert "Exported 4 rows" in proc.stdout and "--dedupe=4" in proc.stdout
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4
