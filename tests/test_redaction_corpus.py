"""Redaction at secret-scanner strength, measured on an independent corpus (tests/data/
secrets_corpus.py: credentials after gitleaks, detect-secrets and trufflehog; and ordinary
text that must stay as it is).

Every credential is planted in real trials, raw and as a terminal or a tool call would
carry it: split by grep's colour codes, wrapped at 80 columns, redrawn after a carriage
return, JSON-escaped inside tool-call arguments given as text; some in metadata (task,
trial, run id, tool call id, subagent file name). The export goes through the CLI to
JSONL and Parquet with a report; nothing of any secret may be found in them, nor on the
console, once colour codes, carriage returns, line breaks and escapes are undone.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, atif, make_trial, run_cli, write_json

sys.path.insert(0, str(ROOT / "tests" / "data"))
import secrets_corpus as corpus  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def grep_color(line: str, secret: str) -> str:
    """grep --color=always highlighting the middle third of the secret."""
    a, b = len(secret) // 3, 2 * len(secret) // 3
    coloured = line.replace(secret, f"{secret[:a]}\x1b[01;31m\x1b[K{secret[a:b]}\x1b[m\x1b[K{secret[b:]}")
    return f"\x1b[32m$\x1b[0m {coloured}"  # and a coloured prompt


def wrapped(text: str, width: int = 80) -> str:
    """As a terminal of 80 columns shows it: each line broken every 80 characters."""
    return "\n".join(line[i:i + width] for line in text.split("\n") for i in range(0, max(len(line), 1), width))


def planted(line: str, secret: str) -> list[str]:
    return [line, grep_color(line, secret), wrapped(line), f"Downloading... 10%\r{line}",
            f"{line}\r{line}"]


def plant_positives(job: Path) -> None:
    for n, (kind, secret, line) in enumerate(corpus.POSITIVES):
        steps = [{"step_id": 1, "source": "user", "message": line},
                 {"step_id": 2, "source": "agent", "message": grep_color(line, secret),
                  "reasoning_content": wrapped(line),
                  "tool_calls": [
                      {"tool_call_id": f"call_{n}", "function_name": "bash", "arguments": {"cmd": line}},
                      {"tool_call_id": f"raw_{n}", "function_name": "bash",
                       "arguments": json.dumps({"cmd": line}, ensure_ascii=True)}],
                  "observation": {"results": [{"source_call_id": f"call_{n}", "content": "\n".join(planted(line, secret))},
                                              {"source_call_id": f"raw_{n}", "content": "ok"}]}},
                 {"step_id": 3, "source": "agent", "message": "done"}]
        make_trial(job, f"t__{n:03d}", trajectory=atif(steps))
    # secrets in metadata: task, trial name, run id, tool call id, a subagent file name
    simple = [s for _, s, _ in corpus.POSITIVES if re.fullmatch(r"[A-Za-z0-9_.-]{12,120}", s)][:8]
    for n, secret in enumerate(simple):
        steps = [{"step_id": 1, "source": "user", "message": "task"},
                 {"step_id": 2, "source": "agent", "message": "ok",
                  "tool_calls": [{"tool_call_id": secret, "function_name": "bash", "arguments": {}}],
                  "observation": {"results": [{"source_call_id": secret, "content": "done"}]}}]
        trial = make_trial(job, f"m__{secret}", trajectory=atif(steps), task=f"task-{secret}")
        result = json.loads((trial / "result.json").read_text())
        result["config"]["job_id"] = secret
        write_json(trial / "result.json", result)
        write_json(trial / "agent" / f"trajectory.{secret}.json", atif(steps[:2]))


def plant_negatives(job: Path) -> None:
    for n, (_, line) in enumerate(corpus.NEGATIVES):
        steps = [{"step_id": 1, "source": "user", "message": line},
                 {"step_id": 2, "source": "agent", "message": line,
                  "tool_calls": [{"tool_call_id": f"call_{n}", "function_name": "bash", "arguments": {"cmd": line}}],
                  "observation": {"results": [{"source_call_id": f"call_{n}", "content": line}]}},
                 {"step_id": 3, "source": "agent", "message": "done"}]
        make_trial(job, f"n__{n:03d}", trajectory=atif(steps))


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def as_shown(text: str) -> str:
    """What a reader reconstructs: colour codes, carriage returns and line breaks undone,
    JSON escapes decoded (twice: arguments JSON inside a JSON file)."""
    for _ in range(2):
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
        text = text.replace('\\"', '"').replace("\\n", "\n").replace("\\/", "/")
    return ANSI.sub("", text).replace("\r", "").replace("\n", "")


def leaks(texts: list[str]) -> list[str]:
    shown = as_shown("\0".join(texts))
    return [f"{kind}: {secret}" for kind, secret, _ in corpus.POSITIVES if secret in shown]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("secrets")
    plant_positives(base / "job")
    outputs = {}
    for kind in ("jsonl", "parquet"):
        proc = run_cli("traces", "export", "-p", str(base / "job"), "-o", str(base / f"out.{kind}"),
                       "--report", str(base / f"report-{kind}.json"), "--verbose", "--schema", "messages")
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[kind] = proc
    return base, outputs


def test_no_secret_survives_in_any_output(exported):
    base, procs = exported
    rows = [json.loads(line) for line in (base / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(corpus.POSITIVES) + 8 + 8  # every trial exported, subagents too
    shown = "".join(m["content"] for r in rows for m in r["messages"])
    assert "\x1b[32m$\x1b[0m " in shown and "\r" in shown  # the planted forms reach the rows
    texts = {
        "jsonl": [(base / "out.jsonl").read_text()] + strings(rows),
        "parquet": strings(pq.read_table(base / "out.parquet").to_pylist()),
        "report": [(base / "report-jsonl.json").read_text()],
        "console": [p.stdout + p.stderr for p in procs.values()],
    }
    assert {where: leaks(t) for where, t in texts.items()} == {where: [] for where in texts}
    report = json.loads((base / "report-jsonl.json").read_text())
    assert sum(report["redactions"].values()) >= len(corpus.POSITIVES) * 10


def test_arguments_stay_structured_and_placeholders_name_the_kind(exported):
    base, _ = exported
    rows = [json.loads(line) for line in (base / "out.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["trial_name"] == "t__000")
    calls = [m for m in row["messages"] if m["role"] == "assistant"][0]["tool_calls"]
    assert calls[0]["function"]["arguments"] == {"cmd": "export OPENAI_API_KEY=[REDACTED:openai]"}
    assert "[REDACTED:" in json.dumps(calls[1]["function"]["arguments"])


def test_ordinary_text_is_left_alone(tmp_path):
    plant_negatives(tmp_path / "job")
    out = tmp_path / "out.jsonl"
    proc = run_cli("traces", "export", "-p", str(tmp_path / "job"), "-o", str(out), "--schema", "messages",
                   "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["redactions"] == {}
    rows = {(r["trial_name"], r["episode"]): r for r in map(json.loads, out.read_text().splitlines())}
    for n, (description, line) in enumerate(corpus.NEGATIVES):
        messages = rows[f"n__{n:03d}", "episode-1"]["messages"]
        assert [m["content"] for m in messages][:3] == [line, line, line], description
        assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"cmd": line}


def test_no_secret_reaches_the_pushed_card(tmp_path):
    """The dataset card names tasks, agents, models and run ids, and quotes the report."""
    from local_hub import LocalHub
    from test_push import hub_env

    plant_positives(tmp_path / "job")
    with LocalHub(tmp_path / "hub") as hub:
        env = hub_env(hub, tmp_path)
        proc = run_cli("traces", "export", "-p", str(tmp_path / "job"), "--push", "--repo", "me/traces", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        card_text = hub.read_file("me/traces", "README.md").decode()
    assert "task-[REDACTED:" in card_text  # the planted task names are in its table, redacted
    assert leaks([card_text, proc.stdout, proc.stderr]) == []


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_wrap_at_any_column_hides_nothing(eol):
    """A terminal wraps at its width wherever that falls: inside the secret, its trigger or
    its key name, with \\n or (a pty) \\r\\n."""
    from harbor_hooks.pipeline.redact import Redactor

    redactor = Redactor()
    for _, secret, line in corpus.POSITIVES:
        if "\n" in line or len(line) > 200:
            continue
        for column in range(1, len(line)):
            padded = "$ " + "x" * (80 - column - 3) + " " + line  # the wrap at `column` of the line
            text = eol.join(padded[i:i + 80] for i in range(0, len(padded), 80))
            shown = as_shown(redactor.text(text, redactor.rules_for([text])))
            assert secret not in shown, (column, text)
