"""The agent corpus (tests/data/agent-corpus): trials of six Harbor 0.24 installed agents whose
`agent/trajectory.json` was written by each agent's own converter (`populate_context_post_run`)
from session logs in that agent's format, kept in logs/<agent>/<task>/.

| trial | converter | what it holds |
| --- | --- | --- |
| fix-median__claude-code | ClaudeCode (sessions/projects/*.jsonl) | thinking, one message split over two events, Bash/Edit |
| fix-median__codex | Codex (sessions/YYYY/MM/DD/rollout-*.jsonl) | reasoning summary, function and custom (apply_patch) calls |
| fix-median__gemini-cli | GeminiCli (gemini-cli.trajectory.jsonl, v0.40 JSONL) | thoughts, message_update records |
| read-chart__gemini-cli | GeminiCli | a read_file result with an inline PNG: an ATIF image part |
| fix-median__mini-swe-agent | MiniSweAgent (mini-swe-agent.trajectory.json) | tool-calling v2 messages, usage |
| fix-median__opencode | OpenCode (opencode.txt, run --format=json) | reasoning, step_start/step_finish groups |
| fix-median__qwen-code | QwenCode (qwen-sessions/**/chats + subagents/) | an embedded ATIF-v1.7 subagent |

Rows are compared with Harbor 0.24's own exporter (`harbor.utils.traces_utils.export_traces`,
in the venv of harbor_env.harbor_python()), trial by trial, by the expected-rows rule of
tests/data/expected/README.md (Harbor's non-null columns equal, canonical order). Where Harbor
cannot take a trial, the difference is exactly the documented one:

- read-chart__gemini-cli: Harbor raises MultimodalExportError; we write the image as the
  `[image: path]` placeholder, after the text part. Harbor, given the same trajectory with
  that content already turned into the one string we write, gives our rows.
- fix-median__qwen-code: Harbor ignores `subagent_trajectories`; we add one row for the
  embedded subagent (trace_source: its agent.name, `qwen-code`). Harbor, given the same
  subagent as a file subagent (`agent/trajectory.qwen-code.json`), gives our rows, that one
  included (its `agent` is the run's `qwen-coder`, as Harbor names subagent rows).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import assert_rows_match, canonical_key, read_jsonl, run_cli
from harbor_env import venv_env

DATA = Path(__file__).parent / "data" / "agent-corpus"
JOB = DATA / "job"
TRIALS = sorted(p.name for p in JOB.iterdir() if (p / "result.json").is_file())

# Harbor cannot export these as they are (what it does instead, and what it exports once
# the trajectory is laid out as it can read): see the module docstring.
HARBOR_RAISES = {"read-chart__gemini-cli": "MultimodalExportError"}
EMBEDDED_SUBAGENTS = {"fix-median__qwen-code": ["qwen-code"]}

# Runs on the venv's Python 3.12: argv[1] the job, argv[2] where to write the JSON result.
# For each trial, in a job of its own (one raising trial must not hide the others): Harbor's
# rows or its exception, for the trial as it is ("as_is") and once more ("adapted") with
# embedded subagents moved out to trajectory.<agent.name>.json files (Harbor's file
# subagents) and list-of-parts contents turned into the one string we write for them.
HARBOR_EXPORT = r'''
import json, shutil, sys, tempfile
from pathlib import Path
from harbor.utils.traces_utils import export_traces

def as_string(content):
    if not isinstance(content, list):
        return content
    return "".join(p["text"] if p.get("type") == "text" else f"[image: {p['source']['path']}]"
                   for p in content)

def adapt(agent_dir):
    path = agent_dir / "trajectory.json"
    doc = json.loads(path.read_text())
    for sub in doc.pop("subagent_trajectories", None) or []:
        (agent_dir / f"trajectory.{sub['agent']['name']}.json").write_text(json.dumps(sub))
    for step in doc["steps"]:
        step["message"] = as_string(step.get("message"))
        for result in (step.get("observation") or {}).get("results", []):
            result["content"] = as_string(result.get("content"))
    path.write_text(json.dumps(doc))

def export(trial, adapted):
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job"
        shutil.copytree(trial, job / trial.name)
        if adapted:
            adapt(job / trial.name / "agent")
        try:
            ds = export_traces(job, episodes="all", verbose=False, use_rich_progress=False)
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"rows": [{k: v for k, v in row.items() if v is not None} for row in ds.to_list()]}

job = Path(sys.argv[1])
out = {trial.name: {"as_is": export(trial, False), "adapted": export(trial, True)}
       for trial in sorted(job.iterdir()) if (trial / "result.json").is_file()}
Path(sys.argv[2]).write_text(json.dumps(out))
'''


@pytest.fixture(scope="module")
def harbor_rows(harbor_py, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("harbor-export")
    script, out = tmp / "export.py", tmp / "rows.json"
    script.write_text(HARBOR_EXPORT)
    proc = subprocess.run([str(harbor_py), str(script), str(JOB), str(out)], capture_output=True,
                          text=True, timeout=600, env=venv_env())
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def our_rows(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ours") / "out.jsonl"
    proc = run_cli("traces", "export", "-p", str(JOB), "-o", str(out), check=True)
    assert "1 images replaced by a text placeholder" in proc.stdout
    return read_jsonl(out)


def trajectory(trial: str) -> dict:
    return json.loads((JOB / trial / "agent" / "trajectory.json").read_text())


def test_the_corpus_covers_six_agents_and_stays_small():
    agents = {json.loads((JOB / t / "result.json").read_text())["agent_info"]["name"] for t in TRIALS}
    assert agents == {"claude-code", "codex", "gemini-cli", "mini-swe-agent", "opencode", "qwen-coder"}
    assert trajectory("fix-median__qwen-code")["subagent_trajectories"][0]["agent"]["extra"][
        "subagent_name"] == "general-purpose"
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) < 300_000


# LiteLLM's price table (claude-code's step estimates, codex's) is the venv's litellm, which
# harbor==0.24.0 does not pin: a price is compared as "there", not by value.
def normalized(value):
    if isinstance(value, dict):
        return {k: ("<price>" if k in ("cost_usd", "total_cost_usd") and v is not None else normalized(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def test_make_corpus_rebuilds_the_committed_trials(harbor_py, tmp_path):
    out = tmp_path / "job"
    proc = subprocess.run([str(harbor_py), str(DATA / "make_corpus.py"), str(out)], capture_output=True,
                          text=True, timeout=600, env=venv_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    built = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    committed = sorted(str(p.relative_to(JOB)) for p in JOB.rglob("*") if p.is_file())
    assert built == committed
    for name in committed:
        got, want = out / name, JOB / name
        if name.endswith(".json"):
            assert normalized(json.loads(got.read_text())) == normalized(json.loads(want.read_text())), name
        else:
            assert got.read_bytes() == want.read_bytes(), name


@pytest.mark.parametrize("trial", TRIALS)
def test_rows_equal_harbors_or_differ_as_documented(trial, our_rows, harbor_rows):
    ours = [row for row in our_rows if row["trial_name"] == trial]
    as_is, adapted = harbor_rows[trial]["as_is"], harbor_rows[trial]["adapted"]
    main = [row for row in ours if row["trace_source"] == "main"]
    extra = sorted(row["trace_source"] for row in ours if row["trace_source"] != "main")

    if trial in HARBOR_RAISES:
        assert as_is.get("error") == HARBOR_RAISES[trial], as_is
    else:
        assert "error" not in as_is, as_is
        assert_rows_match(main, as_is["rows"])  # Harbor exports the main trajectory only
        assert {row.get("trace_source", "main") for row in as_is["rows"]} == {"main"}
    assert extra == EMBEDDED_SUBAGENTS.get(trial, [])

    # Harbor on the same content laid out as it can read it gives all our rows
    assert "error" not in adapted, adapted
    assert_rows_match(ours, adapted["rows"])


def test_the_documented_differences_in_detail(our_rows):
    chart = sorted((r for r in our_rows if r["trial_name"] == "read-chart__gemini-cli"), key=canonical_key)
    assert chart[-1]["conversations"][2]["content"] == (
        "Binary content provided (1 item(s)).[image: images/step_2_obs_0_img_0.png]")
    sub = next(r for r in our_rows if r["trace_source"] == "qwen-code")
    assert (sub["agent"], sub["model"], sub["episode"]) == ("qwen-coder", "qwen3-coder-plus", "episode-0")
    assert sub["conversations"][0]["content"] == "Find median() and the failing test in /app; report the cause."
    assert sub["conversations"][1]["content"].startswith("<think>Search for the definition first.</think>")


def texts(doc: dict):
    """Every message, reasoning and text result of a trajectory and its embedded subagents,
    but the results of a last step: no turn follows them, so no row holds them (Harbor's rule
    too: an episode ends with an agent step)."""
    for i, step in enumerate(doc["steps"]):
        for key in ("message", "reasoning_content"):
            if isinstance(step.get(key), str) and step[key].strip():
                yield step[key]
        if i == len(doc["steps"]) - 1:
            continue
        for result in (step.get("observation") or {}).get("results", []):
            content = result.get("content")
            parts = [content] if isinstance(content, str) else [
                p["text"] for p in content or [] if p.get("type") == "text"]
            yield from (p for p in parts if p.strip())
    for sub in doc.get("subagent_trajectories") or []:
        yield from texts(sub)


@pytest.mark.parametrize("trial", TRIALS)
def test_no_text_is_lost(trial, our_rows):
    contents = [m["content"] for row in our_rows if row["trial_name"] == trial for m in row["conversations"]]
    missing = [text[:60] for text in texts(trajectory(trial)) if not any(text in c for c in contents)]
    assert missing == []
