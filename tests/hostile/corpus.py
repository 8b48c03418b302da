"""The hostile corpus: one builder per case, with the exact outcome the export must give.

Each case builds one or more trials in its own folder (``<root>/<case>/``); links meant to
lead out of a trial point into ``outside`` (a folder that is not under the exported root).
The outcome of a case is: how many rows its trials give, every skip the export reports
for paths in its folder (kind, path relative to the folder, reason: exactly these, each
once), report notes, and optional checks of the rows' contents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import atif, make_trial, simple_steps, trial_result, write_json

T = "t__1"
WROTE_NEITHER = "agent 'terminus-2' wrote neither agent/trajectory.json nor agent/episode-N/ folders"
NO_EPISODE = "no complete episode to export"
OUTSIDE_LINK = "symlink points outside the trial directory"


@dataclass(frozen=True)
class Skip:
    kind: str  # trial | episode | file | step | row
    path: str  # relative to the case folder ("" is the folder itself)
    reason: str


@dataclass
class Case:
    name: str
    build: Callable[[Path, Path], None]
    rows: int
    skips: tuple[Skip, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()  # (path relative to the case folder, note after "path: ")
    check: Callable[[list[dict[str, Any]]], None] | None = None
    doc: str = ""


CASES: dict[str, Case] = {}


def case(rows: int, skips: list[tuple[str, str, str]] = (), notes: list[tuple[str, str]] = (),
         check: Callable[[list[dict[str, Any]]], None] | None = None):
    def register(build: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
        CASES[build.__name__] = Case(build.__name__, build, rows, tuple(Skip(*s) for s in skips),
                                     tuple(notes), check, (build.__doc__ or "").strip())
        return build
    return register


# --- helpers -----------------------------------------------------------------------------

def episode(trial: Path, n: int, messages: list | None = None, prompt: str | bytes | None = None,
            reply: str | bytes | None = None, reply_json: Any = None) -> Path:
    folder = trial / "agent" / f"episode-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    if messages is not None:
        write_json(folder / "debug.json", {"input": messages, "api_base": "https://example.invalid"})
    for name, value in (("prompt.txt", prompt), ("response.txt", reply)):
        if value is not None:
            (folder / name).write_bytes(value if isinstance(value, bytes) else value.encode())
    if reply_json is not None:
        write_json(folder / "response.json", reply_json)
    return folder


def episode_trial(d: Path, n: int = 2) -> Path:
    """A trial of n complete episodes (debug.json + response.txt)."""
    trial = make_trial(d, T)
    for i in range(n):
        episode(trial, i, messages=[{"role": "user", "content": f"q{i}"}], reply=f"a{i}")
    return trial


def truncated(data: Any) -> str:
    text = json.dumps(data)
    return text[:len(text) // 2]


def step_doc(**agent_step: Any) -> dict:
    """simple_steps(2) with the first agent step changed."""
    steps = simple_steps(2)
    steps[1].update(agent_step)
    return atif(steps)


def contents(rows: list[dict]) -> list[str]:
    return [m["content"] for r in rows for m in r["conversations"]]


# --- truncated JSON ------------------------------------------------------------------------

@case(rows=0, skips=[("trial", f"{T}/result.json", "invalid JSON (unexpected end of data)")])
def truncated_result_json(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "result.json").write_text(truncated(trial_result(T)))


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "invalid JSON (unexpected end of data)")])
def truncated_trajectory(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").write_text(truncated(atif(simple_steps(2))))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.cont-1.json", "invalid JSON (unexpected end of data)")])
def truncated_continuation(d: Path, outside: Path) -> None:
    """The main segment's episodes are kept; the chain stops at the cut segment."""
    trial = make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="trajectory.cont-1.json"))
    (trial / "agent" / "trajectory.cont-1.json").write_text(truncated(atif(simple_steps(2))))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.summary-1.json", "invalid JSON (unexpected end of data)")])
def truncated_subagent(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "agent" / "trajectory.summary-1.json").write_text(truncated(atif(simple_steps(1))))


@case(rows=1, skips=[("episode", f"{T}/agent/episode-0/debug.json", "invalid JSON (unexpected end of data)")])
def truncated_debug_json(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    (trial / "agent" / "episode-0" / "debug.json").write_text(
        truncated({"input": [{"role": "user", "content": "q0"}]}))


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1/response.json", "invalid JSON (unexpected end of data)")])
def truncated_response_json(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    (trial / "agent" / "episode-1" / "response.txt").unlink()
    (trial / "agent" / "episode-1" / "response.json").write_text(truncated({"content": "a1", "x": 1}))


@case(rows=2, skips=[("file", f"{T}/config.json", "invalid JSON (unexpected end of data)")])
def truncated_config_json(d: Path, outside: Path) -> None:
    """result.json without its config block: config.json is consulted, and it is cut."""
    result = trial_result(T)
    del result["config"]
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)), result=result)
    (trial / "config.json").write_text(truncated({"agent": {"name": "x"}, "job_id": "J"}))


@case(rows=2, skips=[("file", "result.json", "invalid JSON (unexpected end of data)")],
      check=lambda rows: [r["result"] for r in rows] == ["1.0", "1.0"] or _fail(rows))
def truncated_job_result(d: Path, outside: Path) -> None:
    """The job-level result.json is cut: the trial's own reward is used."""
    make_trial(d, T, trajectory=atif(simple_steps(2)))
    (d / "result.json").write_text(truncated({"stats": {"evals": {"e": {"reward_stats": {}}}}}))


# --- empty files ---------------------------------------------------------------------------

@case(rows=0, skips=[("trial", f"{T}/result.json", "empty file")])
def empty_result_json(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "result.json").write_text("")


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "empty file")])
def empty_trajectory(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").write_text("  \n")


@case(rows=1, skips=[("episode", f"{T}/agent/episode-0/debug.json", "empty file")])
def empty_debug_json(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    (trial / "agent" / "episode-0" / "debug.json").write_text("")


@case(rows=2, check=lambda rows: rows[1]["conversations"][-1] == {"role": "assistant", "content": ""} or _fail(rows))
def empty_response_txt(d: Path, outside: Path) -> None:
    """An empty reply is still a reply: the row is kept, with the empty text the file holds."""
    trial = episode_trial(d)
    (trial / "agent" / "episode-1" / "response.txt").write_text("")


@case(rows=1, check=lambda rows: rows[0]["conversations"] == [
    {"role": "user", "content": ""}, {"role": "assistant", "content": "a"}] or _fail(rows))
def empty_prompt_txt(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    episode(trial, 0, prompt="", reply="a")


# --- JSON of the wrong type, at every level --------------------------------------------------

@case(rows=0, skips=[("trial", f"{T}/result.json", "expected a JSON object, found list")])
def result_json_is_list(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    write_json(trial / "result.json", [trial_result(T)])


@case(rows=0, skips=[("trial", f"{T}/result.json", "expected a JSON object, found NoneType")])
def result_json_is_null(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "result.json").write_text("null")


def _check_result_fields(rows: list[dict]) -> None:
    assert [(r["agent"], r["result"], r["reward"], r["success"], r["date"], r["task"]) for r in rows] == [
        ("terminus-2", None, None, False, "5", "unknown-task")] * 2, rows


@case(rows=2, check=_check_result_fields)
def result_fields_wrong_types(d: Path, outside: Path) -> None:
    """Inside result.json: config.agent a string, verifier_result a list, exception_info a
    string, started_at a number, task_name a list: what is usable is used, the rows kept."""
    result = trial_result(T, verifier_result=[1.0], exception_info="boom", started_at=5, task_name=["x"])
    result["config"]["agent"] = "terminus-2"
    make_trial(d, T, trajectory=atif(simple_steps(2)), result=result)


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "expected a JSON object, found list")])
def trajectory_is_list(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=simple_steps(2))  # the steps alone, without the document


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "'steps' is a dict, expected a list")])
def steps_is_object(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif({"1": simple_steps(1)[0]}))


@case(rows=0, skips=[("trial", T, NO_EPISODE)])
def steps_is_null(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif(None))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "step is a list, expected an object"),
                     ("step", f"{T}/agent/trajectory.json", "step is a NoneType, expected an object")])
def step_is_list_or_null(d: Path, outside: Path) -> None:
    steps = simple_steps(2)
    make_trial(d, T, trajectory=atif(steps[:2] + [["agent", "reply"], None] + steps[2:]))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "observation is a list, expected an object (step 2)")],
      check=lambda rows: "out 0" not in contents(rows) and "reply 1" in contents(rows) or _fail(rows))
def observation_is_list(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=step_doc(observation=[{"content": "out 0"}]))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "observation results is a dict, expected a list (step 2)")])
def results_is_object(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=step_doc(observation={"results": {"content": "out 0"}}))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "observation result is a str, expected an object (step 2)")],
      check=lambda rows: "kept" in contents(rows) or _fail(rows))
def result_item_is_string(d: Path, outside: Path) -> None:
    """The malformed result is reported; its well-formed sibling is kept."""
    make_trial(d, T, trajectory=step_doc(observation={"results": ["out 0", {"content": "kept"}]}))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "tool_calls is not a list (step 2)")])
def tool_calls_is_object(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=step_doc(tool_calls={"function_name": "bash", "arguments": {}}))


@case(rows=2, skips=[("step", f"{T}/agent/trajectory.json", "tool call is not an object (step 2)")],
      check=lambda rows: any('"name": "bash"' in c for c in contents(rows)) or _fail(rows))
def tool_call_is_list(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=step_doc(tool_calls=[["bash", {"cmd": "ls"}],
                                                     {"function_name": "bash", "arguments": {"cmd": "ls"}}]))


@case(rows=2, check=lambda rows: {(r["agent"], r["model"]) for r in rows} == {("terminus-2", "gpt-4o")} or _fail(rows))
def agent_is_list(d: Path, outside: Path) -> None:
    """A malformed agent block: the names come from result.json, the steps are all kept."""
    make_trial(d, T, trajectory=atif(simple_steps(2), agent=["terminus-2", "openai/gpt-4o"]))


@case(rows=0, skips=[("episode", f"{T}/agent/episode-0/debug.json", "no 'input' list of messages"),
                     ("trial", T, NO_EPISODE)])
def debug_json_is_list(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    episode(trial, 0, reply="a")
    write_json(trial / "agent" / "episode-0" / "debug.json", [{"role": "user", "content": "q"}])


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1/debug.json", "no 'input' list of messages")])
def debug_input_is_object(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    write_json(trial / "agent" / "episode-1" / "debug.json", {"input": {"role": "user", "content": "q"}})


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1/debug.json", "input[1] is not a {role, content} message")])
def debug_message_is_list(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    write_json(trial / "agent" / "episode-1" / "debug.json",
               {"input": [{"role": "user", "content": "q"}, ["user", "q1"]]})


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1/debug.json", "input[0] is not a {role, content} message")])
def debug_message_is_null(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    write_json(trial / "agent" / "episode-1" / "debug.json", {"input": [None]})


def _check_numbers_as_strings(rows: list[dict]) -> None:
    assert [(r["result"], r["reward"], r["success"]) for r in rows] == [("1.0", 1.0, True)] * 2, rows
    assert rows[0]["prompt_tokens"] is None  # "812" is not a count; nothing else is lost
    assert [m["content"] for m in rows[1]["conversations"]] == ["task", "reply 0", "out 0", "reply 1"]


@case(rows=2, check=_check_numbers_as_strings)
def numbers_as_strings(d: Path, outside: Path) -> None:
    result = trial_result(T)
    result["verifier_result"]["rewards"]["reward"] = "1.0"
    steps = simple_steps(2)
    for step in steps:
        step["step_id"] = str(step["step_id"])
    steps[1]["metrics"] = {"prompt_tokens": "812", "completion_tokens": "95"}
    make_trial(d, T, trajectory=atif(steps), result=result)


def _check_nulls(rows: list[dict]) -> None:
    assert [m["content"] for m in rows[1]["conversations"]] == ["task", "", "", "reply 1"], rows
    assert rows[0]["agent"] == "terminus-2"


@case(rows=2, check=_check_nulls)
def nulls_everywhere(d: Path, outside: Path) -> None:
    """message, content, agent, reasoning, tool_calls, metrics, observation results: null."""
    steps = simple_steps(2)
    steps[1].update(message=None, reasoning_content=None, tool_calls=None, metrics=None,
                    observation={"results": [{"content": None, "source_call_id": None}]})
    steps[2]["observation"] = {"results": None}
    result = trial_result(T, agent_info=None, exception_info=None, verifier_result=None)
    make_trial(d, T, trajectory=atif(steps, agent=None, continued_trajectory_ref=None), result=result)


@case(rows=1, check=lambda rows: rows[0]["conversations"][0]["content"] == "" and
      rows[0]["conversations"][-1]["content"] == "" or _fail(rows))
def episode_nulls(d: Path, outside: Path) -> None:
    """debug.json message content null, response.json null: empty texts, the row kept."""
    trial = make_trial(d, T)
    episode(trial, 0, messages=[{"role": "user", "content": None}], reply_json=None)
    (trial / "agent" / "episode-0" / "response.json").write_text("null")


@case(rows=1, check=lambda rows: rows[0]["prompt_tokens"] is None or _fail(rows))
def token_count_beyond_int64(d: Path, outside: Path) -> None:
    """2**63 prompt tokens does not fit the int64 column: dropped, the row kept."""
    steps = simple_steps(1)
    steps[1]["metrics"] = {"prompt_tokens": 2 ** 63, "completion_tokens": 2 ** 64 - 1}
    make_trial(d, T, trajectory=atif(steps))


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "invalid JSON (depth limit exceeded)")])
def nested_too_deep(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").write_text(
        '{"steps": [{"source": "agent", "message": ' + "[" * 5000 + "]" * 5000 + "}]}")


@case(rows=2, check=lambda rows: any('"arguments": [[[[' in c and "[REDACTED:openai]" in c
                                      for c in contents(rows)) and "Zq3R9" not in str(rows) or _fail(rows))
def tool_arguments_nested_deep(d: Path, outside: Path) -> None:
    """Arguments 300 levels deep (orjson reads 1024, writes 255): kept whole, and redacted."""
    make_trial(d, T, trajectory=step_doc(tool_calls=[
        {"function_name": "f", "arguments": json.loads("[" * 300 + '"sk-proj-Zq3R9vTt2XbN8mKp4LwY6sFh1J"' + "]" * 300)}]))


@case(rows=1, notes=[(f"{T}/agent/trajectory.json",
                      "not strict JSON (unexpected character, expected a JSON value), read as Python's json reads it")],
      check=lambda rows: rows[0]["prompt_tokens"] is None or _fail(rows))
def nan_and_infinity(d: Path, outside: Path) -> None:
    """What Python's json writes (NaN, Infinity) is read, and noted."""
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").write_text(json.dumps(atif(
        [{"step_id": 1, "source": "user", "message": "task"},
         {"step_id": 2, "source": "agent", "message": "m", "metrics": {"prompt_tokens": float("nan"),
                                                                       "cost_usd": float("inf")}}])))


# --- invalid UTF-8 and NUL bytes inside messages ----------------------------------------------

def _check_utf8(rows: list[dict]) -> None:
    texts = contents(rows)
    assert "reply \ufffd\ufffd 0" in texts and "out \ufffd 0" in texts, texts


@case(rows=2, check=_check_utf8,
      notes=[(f"{T}/agent/trajectory.json", "invalid UTF-8 replaced with U+FFFD")])
def invalid_utf8_in_trajectory(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    data = json.dumps(atif(simple_steps(2))).encode()
    data = data.replace(b"reply 0", b"reply \xff\xfe 0").replace(b"out 0", b"out \xc3 0")
    (trial / "agent" / "trajectory.json").write_bytes(data)


@case(rows=1, notes=[(f"{T}/agent/episode-0/debug.json", "invalid UTF-8 replaced with U+FFFD")],
      check=lambda rows: contents(rows) == ["q\ufffd", "a\ufffd\ufffd\ufffdz"] or _fail(rows))
def invalid_utf8_in_episode(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    folder = episode(trial, 0, reply=b"a\xed\xa0\x80z")  # an encoded surrogate is invalid UTF-8
    (folder / "debug.json").write_bytes(b'{"input": [{"role": "user", "content": "q\x80"}]}')


@case(rows=2, check=lambda rows: "a\x00b" in contents(rows) and "out\x00 0" in contents(rows) or _fail(rows))
def nul_escaped_in_json(d: Path, outside: Path) -> None:
    """\\u0000 in a message and an observation: the NUL is kept, as the data holds it."""
    steps = simple_steps(2)
    steps[1]["message"] = "a\x00b"
    steps[1]["observation"]["results"][0]["content"] = "out\x00 0"
    make_trial(d, T, trajectory=atif(steps))


@case(rows=2, notes=[(f"{T}/agent/trajectory.json",
                      "not strict JSON (unexpected control character in string), read as Python's json reads it")],
      check=lambda rows: "reply\x00 0" in contents(rows) or _fail(rows))
def nul_raw_in_json(d: Path, outside: Path) -> None:
    """A raw NUL byte inside a JSON string (strict JSON forbids it): kept, and noted."""
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").write_bytes(
        json.dumps(atif(simple_steps(2))).encode().replace(b"reply 0", b"reply\x00 0"))


@case(rows=1, check=lambda rows: contents(rows) == ["do\x00it", "done\x00\x00"] or _fail(rows))
def nul_raw_in_text_files(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    episode(trial, 0, prompt=b"do\x00it", reply=b"done\x00\x00")


# --- a folder where a file is expected, and the reverse ------------------------------------------

@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "is a directory, expected a file")])
def trajectory_is_dir(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").mkdir()


@case(rows=0, skips=[("trial", f"{T}/result.json", "is a directory, expected a file")])
def result_json_is_dir(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "result.json").unlink()
    (trial / "result.json").mkdir()


@case(rows=1, skips=[("episode", f"{T}/agent/episode-0/response.txt", "is a directory, expected a file")])
def response_txt_is_dir(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    (trial / "agent" / "episode-0" / "response.txt").unlink()
    (trial / "agent" / "episode-0" / "response.txt").mkdir()


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "is not a regular file")])
def trajectory_is_fifo(d: Path, outside: Path) -> None:
    """A named pipe nobody writes to: opening it for reading would wait forever."""
    trial = make_trial(d, T)
    os.mkfifo(trial / "agent" / "trajectory.json")


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.summary-1.json", "is not a regular file")])
def subagent_file_is_dir(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "agent" / "trajectory.summary-1.json").mkdir()


@case(rows=1, skips=[("episode", f"{T}/agent/episode-0", "is not a directory, expected an episode folder")])
def episode_is_file(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    (trial / "agent" / "episode-0" / "debug.json").unlink()
    (trial / "agent" / "episode-0" / "response.txt").unlink()
    (trial / "agent" / "episode-0").rmdir()
    (trial / "agent" / "episode-0").write_text("not a folder")


@case(rows=0, skips=[("trial", T, WROTE_NEITHER)])
def only_episode_is_file(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "episode-0").write_text("not a folder")


@case(rows=0, skips=[("trial", f"{T}/agent", "is not a directory (a trial keeps its output in agent/)")])
def agent_is_file(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent").rmdir()
    (trial / "agent").write_text("not a folder")


# --- symlink loops, links out of the job ----------------------------------------------------------

@case(rows=2, skips=[("file", "loop", "symlinked directory not followed")])
def dir_symlink_loop(d: Path, outside: Path) -> None:
    """A folder link back to its parent (a loop), and one inside the trial's agent/."""
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (d / "loop").symlink_to(d, target_is_directory=True)
    (trial / "agent" / "again").symlink_to(trial / "agent", target_is_directory=True)


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", "cannot read (Too many levels of symbolic links)")])
def file_symlink_loop(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    (trial / "agent" / "trajectory.json").symlink_to("trajectory.json")


@case(rows=0, skips=[("trial", f"{T}/agent/trajectory.json", OUTSIDE_LINK)])
def trajectory_links_outside(d: Path, outside: Path) -> None:
    trial = make_trial(d, T)
    target = write_json(outside / "foreign-trajectory.json", atif(simple_steps(2, prefix="FOREIGN ")))
    (trial / "agent" / "trajectory.json").symlink_to(target)


@case(rows=0, skips=[("trial", f"{T}/result.json", OUTSIDE_LINK)])
def result_json_links_outside(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2)))
    (trial / "result.json").unlink()
    (trial / "result.json").symlink_to(write_json(outside / "foreign-result.json", trial_result(T)))


@case(rows=0, skips=[("file", "linked__1", "symlinked directory not followed")])
def trial_dir_links_outside(d: Path, outside: Path) -> None:
    real = make_trial(outside, "foreign__1", trajectory=atif(simple_steps(2, prefix="FOREIGN ")))
    (d / "linked__1").symlink_to(real, target_is_directory=True)


@case(rows=0, skips=[("episode", f"{T}/agent/episode-0/response.txt", OUTSIDE_LINK),
                     ("trial", T, NO_EPISODE)])
def agent_dir_links_outside(d: Path, outside: Path) -> None:
    """agent/ itself is a link out of the trial: none of the files under it are read."""
    foreign = outside / "foreign-trial"
    episode(foreign, 0, messages=[{"role": "user", "content": "FOREIGN q"}], reply="FOREIGN a")
    trial = make_trial(d, T)
    (trial / "agent").rmdir()
    (trial / "agent").symlink_to(foreign / "agent", target_is_directory=True)


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1", "is a symlink, expected an episode folder")])
def episode_dir_links_outside(d: Path, outside: Path) -> None:
    foreign = outside / "foreign-episodes"
    episode(foreign, 1, messages=[{"role": "user", "content": "FOREIGN q"}], reply="FOREIGN a")
    trial = make_trial(d, T)
    episode(trial, 0, messages=[{"role": "user", "content": "q0"}], reply="a0")
    (trial / "agent" / "episode-1").symlink_to(foreign / "agent" / "episode-1", target_is_directory=True)


@case(rows=1, skips=[("episode", f"{T}/agent/episode-0/response.txt", OUTSIDE_LINK)])
def reply_links_outside(d: Path, outside: Path) -> None:
    trial = episode_trial(d)
    reply = trial / "agent" / "episode-0" / "response.txt"
    reply.unlink()
    secret = outside / "secret.txt"
    secret.write_text("FOREIGN secret")
    reply.symlink_to(secret)


# --- references: continuation chains and subagents -------------------------------------------------

@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json", "continued_trajectory_ref 'trajectory.json' loops back")])
def continuation_is_itself(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="trajectory.json"))


@case(rows=4, skips=[("file", f"{T}/agent/trajectory.cont-1.json",
                      "continued_trajectory_ref 'trajectory.json' loops back")],
      check=lambda rows: [r["episode"] for r in rows] == [f"episode-{i}" for i in range(4)] or _fail(rows))
def continuation_cycle(d: Path, outside: Path) -> None:
    trial = make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="trajectory.cont-1.json"))
    write_json(trial / "agent" / "trajectory.cont-1.json",
               atif(simple_steps(2, prefix="cont "), continued_trajectory_ref="trajectory.json"))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json", "continued_trajectory_ref '../../x.json' points outside agent/")])
def continuation_climbs_out(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="../../x.json"))
    write_json(d / "x.json", atif(simple_steps(2, prefix="FOREIGN ")))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json", "continued_trajectory_ref '/etc/passwd' points outside agent/")])
def continuation_is_absolute(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="/etc/passwd"))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json",
                      "continued_trajectory_ref 'trajectory.cont-1.json' names no file")])
def continuation_missing(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=atif(simple_steps(2), continued_trajectory_ref="trajectory.cont-1.json"))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json", "continued_trajectory_ref 'a\\x00b' is not a file name"),
                     ("file", f"{T}/agent/trajectory.json", "subagent_trajectory_ref 'x\\x00y' points outside agent/")])
def references_with_nul(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=step_doc(
        observation={"results": [{"content": "out 0", "subagent_trajectory_ref": [{"trajectory_path": "x\x00y"}]}]},
    ) | {"continued_trajectory_ref": "a\x00b"})


def _subagent_step(*paths: str) -> dict:
    return step_doc(observation={"results": [{"content": "out 0", "subagent_trajectory_ref": [
        {"session_id": "s", "trajectory_path": p} for p in paths]}]})


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.summary-1.json", "subagent trajectory referenced but not found")])
def subagent_missing(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=_subagent_step("trajectory.summary-1.json"))


@case(rows=2, skips=[("file", f"{T}/agent/trajectory.json", "subagent_trajectory_ref '/etc/passwd' points outside agent/"),
                     ("file", f"{T}/agent/trajectory.json", "subagent_trajectory_ref '../result.json' points outside agent/")])
def subagent_ref_outside(d: Path, outside: Path) -> None:
    make_trial(d, T, trajectory=_subagent_step("/etc/passwd", "../result.json"))


# --- images -------------------------------------------------------------------------------------

def _check_images(rows: list[dict]) -> None:
    texts = contents(rows)
    assert "see [image: images/a.png]" in texts, texts
    assert "screen: [image: images/shot.png]" in texts, texts
    assert "look [image: images/b.png]" in texts, texts


@case(rows=3, check=_check_images)
def images_in_content(d: Path, outside: Path) -> None:
    """Images in an agent message, an observation, and an episode's debug.json input."""
    steps = simple_steps(2)
    steps[1]["message"] = [{"type": "text", "text": "see "},
                           {"type": "image", "source": {"media_type": "image/png", "path": "images/a.png"}}]
    steps[1]["observation"]["results"][0]["content"] = [
        {"type": "text", "text": "screen: "},
        {"type": "image", "source": {"media_type": "image/png", "path": "images/shot.png"}}]
    make_trial(d, T, trajectory=atif(steps))
    trial = make_trial(d, "t__2")
    episode(trial, 0, messages=[{"role": "user", "content": [
        {"type": "text", "text": "look "},
        {"type": "image", "source": {"media_type": "image/png", "path": "images/b.png"}}]}], reply="ok")


IMAGES_IN_CORPUS = 3


def _fail(rows: list[dict]) -> bool:
    raise AssertionError(json.dumps(rows, indent=1, default=str)[:4000])


# --- issue 16: one bad trial never sinks the job; names carried safely ----------------------

def _check_unknown_reward(rows: list[dict]) -> None:
    assert [(r["reward"], r["success"], r["result"]) for r in rows] == [(None, False, None)] * 2, rows


@case(rows=2, check=_check_unknown_reward)
def reward_int_beyond_double(d: Path, outside: Path) -> None:
    """A reward written as an integer too big for a float: unknown, never a crash."""
    make_trial(d, T, trajectory=atif(simple_steps(2)))
    text = (d / T / "result.json").read_text().replace('"reward": 1.0', '"reward": ' + "9" * 400)
    (d / T / "result.json").write_text(text)


@case(rows=2, check=_check_unknown_reward)
def reward_infinite(d: Path, outside: Path) -> None:
    """A reward of "inf": unknown (null), so not a success either."""
    make_trial(d, T, trajectory=atif(simple_steps(2)), reward="inf")


NON_UTF8 = os.fsdecode(b"t__\xff\xfe")


@case(rows=3, check=lambda rows: sorted({(r["source_path"].split(os.sep)[1], r["trace_source"]) for r in rows}) == [
    ("t__\\xff\\xfe", "helper-\\xe9\\xff"), ("t__\\xff\\xfe", "main")] or _fail(rows))
def non_utf8_names(d: Path, outside: Path) -> None:
    """A trial folder and a subagent file whose names are not UTF-8: exported, the bytes
    escaped (\\xff) in source_path and trace_source."""
    trial = make_trial(d, NON_UTF8, trajectory=atif(simple_steps(2)))
    write_json(trial / "agent" / os.fsdecode(b"trajectory.helper-\xe9\xff.json"), atif(simple_steps(1, "sub ")))
    (trial / "agent" / os.fsdecode(b"notes-\xff.txt")).write_text("an unrelated file")


@case(rows=0, skips=[("trial", "t__1\\nskipped trial /etc/passwd: forged", NO_EPISODE)])
def newline_in_folder_name(d: Path, outside: Path) -> None:
    """A folder name with a newline cannot forge a line on stderr: it is escaped."""
    make_trial(d, "t__1\nskipped trial /etc/passwd: forged", trajectory=atif([]))


@case(rows=1, skips=[("episode", f"{T}/agent/episode-1", "nested too deeply to read")])
def deep_response_json(d: Path, outside: Path) -> None:
    """A 990-deep response.json costs its episode, not the trial."""
    trial = episode_trial(d, 1)
    folder = episode(trial, 1, messages=[{"role": "user", "content": "q1"}])
    (folder / "response.json").write_text('{"content": ' + "[" * 990 + "]" * 990 + "}")


@case(rows=2, notes=[(f"{T}/agent/episode-0/response.txt", "invalid UTF-8 replaced with U+FFFD")])
def undecodable_response_txt(d: Path, outside: Path) -> None:
    """A reply .txt that is not UTF-8 is read with U+FFFD, and noted."""
    trial = episode_trial(d, 2)
    (trial / "agent" / "episode-0" / "response.txt").write_bytes(b"a0 \xff\xfe")


def build_corpus(root: Path, outside: Path) -> None:
    """Every case in its own folder under root."""
    for name, c in CASES.items():
        folder = root / name
        folder.mkdir(parents=True)
        (outside / name).mkdir(parents=True)
        c.build(folder, outside / name)

