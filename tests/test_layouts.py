"""Trial layouts the sample job lacks, built on disk, exported for real."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import atif, make_trial, read_jsonl, run_cli, simple_steps, trial_result, write_json
from harbor_hooks import export_traces



def beside(job: Path, name: str) -> Path:
    """An output next to the exported folder: never inside the trials it exports."""
    out = job.with_name(job.name + "-out")
    out.mkdir(exist_ok=True)
    return out / name

def episode(trial: Path, n: int, messages: list | None = None, prompt: str | None = None,
            reply_txt: str | None = None, reply_json=None) -> None:
    folder = trial / "agent" / f"episode-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    if messages is not None:
        write_json(folder / "debug.json", {"input": messages, "api_key": "sk-live-SECRET",
                                           "api_base": "https://example.invalid"})
    if prompt is not None:
        (folder / "prompt.txt").write_text(prompt)
    if reply_txt is not None:
        (folder / "response.txt").write_text(reply_txt)
    if reply_json is not None:
        write_json(folder / "response.json", reply_json)


def rows(path, **kw) -> list[dict]:
    return export_traces(str(path), workers=1, **kw).to_list()


def test_response_json_reply_and_numeric_episode_order(tmp_path):
    trial = make_trial(tmp_path, "t__1")
    for n in (0, 2, 10):
        episode(trial, n, messages=[{"role": "user", "content": f"q{n}"}],
                reply_json={"content": f"a{n}", "usage": {"tokens": 3}})
    got = rows(tmp_path)
    assert [r["episode"] for r in got] == ["episode-0", "episode-2", "episode-10"]
    assert got[2]["conversations"] == [{"role": "user", "content": "q10"},
                                       {"role": "assistant", "content": "a10"}]
    assert rows(tmp_path, episodes="last")[0]["episode"] == "episode-10"


def test_response_json_field_order(tmp_path):
    trial = make_trial(tmp_path, "t__1")
    episode(trial, 0, messages=[{"role": "user", "content": "q"}], reply_json={"text": "from text"})
    episode(trial, 1, messages=[{"role": "user", "content": "q"}], reply_json={"output": "from output"})
    assert [r["conversations"][-1]["content"] for r in rows(tmp_path)] == ["from text", "from output"]


def test_prompt_txt_without_debug_json(tmp_path):
    trial = make_trial(tmp_path, "t__1")
    episode(trial, 0, prompt="do the task", reply_txt="done")
    assert rows(tmp_path)[0]["conversations"] == [
        {"role": "user", "content": "do the task"}, {"role": "assistant", "content": "done"}]


def test_list_of_parts_content(tmp_path):
    trial = make_trial(tmp_path, "t__1")
    episode(trial, 0, messages=[
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "text", "text": "part one, "},
                                     {"type": "text", "text": "part two"}]}], reply_txt="ok")
    conv = rows(tmp_path)[0]["conversations"]
    assert conv[0] == {"role": "system", "content": "sys"}
    assert conv[1]["content"] == "part one, part two"  # nothing of the second part is lost


def test_cut_off_last_episode_skipped_and_last_takes_last_complete(tmp_path):
    trial = make_trial(tmp_path, "t__1")
    episode(trial, 0, messages=[{"role": "user", "content": "q"}], reply_txt="a0")
    episode(trial, 1, messages=[{"role": "user", "content": "q"}], reply_txt="a1")
    episode(trial, 2, prompt="cut off")
    proc = run_cli("traces", "export", "-p", str(tmp_path), "--episodes", "last",
                   "-o", str(beside(tmp_path, "o.jsonl")), check=True)
    got = read_jsonl(beside(tmp_path, "o.jsonl"))
    assert [r["episode"] for r in got] == ["episode-1"]
    assert "episode-2: no reply" in proc.stderr


def test_config_agents_list_and_missing_agent_info(tmp_path):
    result = trial_result("t__1")
    result["config"] = {"agents": [{"name": "terminus-2", "model_name": "anthropic/claude-x"}],
                        "job_name": "my-job"}
    del result["agent_info"]
    make_trial(tmp_path, "t__1", trajectory=atif(simple_steps(1)), result=result)
    row = rows(tmp_path)[0]
    assert row["agent"] == "terminus-2"
    assert row["model"] == "openai/gpt-4o"  # ATIF: the trajectory's agent.model_name wins
    assert row["run_id"] == "my-job"
    assert row["model_provider"] == "unknown-provider"  # as Harbor, when nothing names it


def test_episode_rows_take_model_from_config_without_agent_info(tmp_path):
    result = trial_result("t__1")
    del result["agent_info"]
    trial = make_trial(tmp_path, "t__1", result=result)
    episode(trial, 0, prompt="q", reply_txt="a")
    assert rows(tmp_path)[0]["model"] == "openai/gpt-4o"


def test_config_json_used_when_result_has_no_config(tmp_path):
    result = trial_result("t__1")
    del result["config"]
    del result["agent_info"]
    trial = make_trial(tmp_path, "t__1", trajectory=atif(simple_steps(1)), result=result)
    write_json(trial / "config.json", {"agent": {"name": "my-agent", "model_name": "m/x"},
                                       "job_id": "J"})
    row = rows(tmp_path)[0]
    assert (row["run_id"], row["trace_source"]) == ("J", "main")


def test_job_still_running(tmp_path):
    """No job-level result.json, one trial without result.json, one without a reply yet."""
    make_trial(tmp_path, "done__1", trajectory=atif(simple_steps(2)))
    running = tmp_path / "running__2"
    (running / "agent").mkdir(parents=True)
    write_json(running / "agent" / "trajectory.json", atif(simple_steps(1)))
    half = make_trial(tmp_path, "half__3")
    episode(half, 0, prompt="q", reply_txt="a")
    episode(half, 1, prompt="q")
    proc = run_cli("traces", "export", "-p", str(tmp_path), "-o", str(beside(tmp_path, "o.jsonl")),
                   check=True)
    got = read_jsonl(beside(tmp_path, "o.jsonl"))
    assert sorted((r["trial_name"], r["episode"]) for r in got) == [
        ("done__1", "episode-0"), ("done__1", "episode-1"), ("half__3", "episode-0")]
    assert got[0]["result"] == "1.0"  # from the trial's own verifier_result
    assert "running__2/result.json: trial has no result.json" in proc.stderr
    assert "1 trial" in proc.stdout and "1 episode" in proc.stdout


def test_non_terminus_agent_with_atif(tmp_path):
    result = trial_result("t__1")
    result["config"]["agent"] = {"name": "claude-code", "model_name": "anthropic/claude-sonnet-4"}
    result["agent_info"] = {"name": "claude-code", "model_info": {"name": "claude-sonnet-4",
                                                                  "provider": "anthropic"}}
    doc = atif(simple_steps(2))
    doc["agent"] = {"name": "claude-code", "model_name": "anthropic/claude-sonnet-4"}
    make_trial(tmp_path, "t__1", trajectory=doc, result=result)
    got = rows(tmp_path)
    assert len(got) == 2 and {r["agent"] for r in got} == {"claude-code"}


def test_agent_with_no_traces_is_reported_not_raised(tmp_path):
    result = trial_result("t__1")
    result["config"]["agent"]["name"] = "oracle"
    trial = make_trial(tmp_path, "t__1", result=result)
    (trial / "agent" / "oracle.txt").write_text("ran the solution")
    make_trial(tmp_path, "t__2", trajectory=atif(simple_steps(1)))
    proc = run_cli("traces", "export", "-p", str(tmp_path), check=True)
    assert "Exported 1 rows" in proc.stdout
    assert "agent 'oracle' wrote neither agent/trajectory.json nor agent/episode-N/ folders" in proc.stderr


def test_both_formats_prefers_atif(tmp_path):
    trial = make_trial(tmp_path, "t__1", trajectory=atif(simple_steps(1, prefix="atif ")))
    episode(trial, 0, prompt="episodes", reply_txt="episodes reply")
    got = rows(tmp_path)
    assert got[0]["conversations"][-1]["content"] == "atif reply 0"


def test_bad_input_one_line_each_and_export_goes_on(tmp_path):
    make_trial(tmp_path, "good__1", trajectory=atif(simple_steps(2)))
    bad_json = make_trial(tmp_path, "badjson__2")
    (bad_json / "agent" / "trajectory.json").write_text('{"steps": [')
    wrong_type = make_trial(tmp_path, "wrongtype__3", trajectory=atif(simple_steps(1)))
    write_json(wrong_type / "agent" / "trajectory.json", {"steps": {"not": "a list"}})
    non_utf8 = make_trial(tmp_path, "nonutf8__4")
    (non_utf8 / "agent" / "trajectory.json").write_bytes(
        json.dumps(atif(simple_steps(1))).encode().replace(b"reply 0", b"reply \xff\xfe 0"))
    bad_result = tmp_path / "badresult__5"
    (bad_result / "agent").mkdir(parents=True)
    (bad_result / "result.json").write_text("[1, 2]")
    proc = run_cli("traces", "export", "-p", str(tmp_path), "-o", str(beside(tmp_path, "o.jsonl")),
                   "--report", str(beside(tmp_path, "report.json")), check=True)
    got = read_jsonl(beside(tmp_path, "o.jsonl"))
    assert {r["trial_name"] for r in got} == {"good__1", "nonutf8__4"}
    assert any("\ufffd" in m["content"] for r in got for m in r["conversations"])
    assert "badjson__2/agent/trajectory.json: invalid JSON" in proc.stderr
    assert "wrongtype__3/agent/trajectory.json: 'steps' is a dict, expected a list" in proc.stderr
    assert "badresult__5/result.json: expected a JSON object, found list" in proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads((beside(tmp_path, "report.json")).read_text())
    assert report["rows"] == 3 and len([s for s in report["skipped"] if s["kind"] == "trial"]) == 3
