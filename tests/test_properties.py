"""Property-based tests (hypothesis) of the readers and the export.

1. Whatever JSON sits where a trace is expected, the readers return a trace or raise
   TraceReadError (the documented error); problems inside a trace are reported into the
   ExportReport, never raised; the whole export never raises.
2. Nothing lost: with redaction off, every text of a generated ATIF trajectory (user,
   system and agent messages, reasoning, tool call names and arguments, observation
   contents) appears in some row, and every complete episode folder's input messages and
   reply appear in its row.

Profiles: "ci" (the default: bounded, runs in seconds), "dev", and "fuzz" (long);
choose with HYPOTHESIS_PROFILE=fuzz.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import trial_result, write_json
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline import run_export
from harbor_hooks.readers.files import TrialFiles
from harbor_hooks.outputs.files import iter_batches
from harbor_hooks.readers.trace import content_text
from harbor_hooks.readers.atif import read_atif_trial
from harbor_hooks.readers.episodes import read_episode_trial
from harbor_hooks.pipeline.secrets import PATTERNS
from harbor_hooks.errors import TraceReadError
from harbor_hooks.report import ExportReport
from harbor_hooks.readers.meta import JobResults, load_trial_meta

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=60, **COMMON)
settings.register_profile("dev", max_examples=300, **COMMON)
settings.register_profile("fuzz", max_examples=20_000, **COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- strategies ---------------------------------------------------------------------------------

# any text a JSON file can carry in UTF-8 (lone surrogates cannot be written, so none)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
PARTS = st.lists(st.builds(lambda t: {"type": "text", "text": t}, TEXT), min_size=1, max_size=3)
CONTENT = st.one_of(TEXT, PARTS)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                        st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
ARGUMENTS = st.dictionaries(TEXT, st.one_of(TEXT, st.integers(-1000, 1000), st.lists(TEXT, max_size=2)),
                            max_size=3)


@st.composite
def tool_call(draw) -> dict:
    return {"tool_call_id": draw(st.one_of(st.none(), TEXT)), "function_name": draw(TEXT),
            "arguments": draw(ARGUMENTS)}


@st.composite
def step(draw) -> dict:
    source = draw(st.sampled_from(["system", "user", "agent", "agent"]))
    out: dict[str, Any] = {"source": source, "message": draw(st.one_of(CONTENT, st.none()))}
    if source == "agent":
        if draw(st.booleans()):
            out["reasoning_content"] = draw(TEXT)
        calls = draw(st.lists(tool_call(), max_size=2))
        if calls:
            out["tool_calls"] = calls
        if draw(st.booleans()):
            out["observation"] = {"results": draw(st.lists(
                st.builds(lambda c: {"content": c}, CONTENT), min_size=1, max_size=2))}
        if draw(st.integers(0, 7)) == 0:
            out["is_copied_context"] = True
    return out


@st.composite
def trajectory(draw) -> list[list[dict]]:
    """Steps split into 1-3 segments of a continuation chain."""
    steps = draw(st.lists(step(), min_size=1, max_size=8))
    for i, s in enumerate(steps):
        s["step_id"] = i + 1
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(steps) - 1)), max_size=2)))
    bounds = [0, *[c for c in cuts if c < len(steps)], len(steps)]
    return [steps[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def write_atif(trial: Path, segments: list[list[dict]], subagent: list[dict] | None) -> None:
    write_json(trial / "result.json", trial_result(trial.name))
    for k, steps in enumerate(segments):
        name = "trajectory.json" if k == 0 else f"trajectory.cont-{k}.json"
        doc = {"schema_version": "ATIF-v1.7", "agent": {"name": "terminus-2", "model_name": "m"},
               "steps": steps}
        if k + 1 < len(segments):
            doc["continued_trajectory_ref"] = f"trajectory.cont-{k + 1}.json"
        write_json(trial / "agent" / name, doc)
    if subagent is not None:
        write_json(trial / "agent" / "trajectory.helper-1.json", {"steps": subagent})


def export_rows(root: Path, **options: Any) -> tuple[list[dict], ExportReport]:
    """run_export in this process, rows read back from its Arrow shards."""
    result = run_export(str(root), ExportOptions(workers=1, **options))
    try:
        table = pa.Table.from_batches(list(iter_batches(result.shards["train"])), schema=result.schema)
        return table.to_pylist(), result.report
    finally:
        result.cleanup()


# --- 1. only TraceReadError, everything else reported ----------------------------------------------

def read_trace(trial: Path):
    report = ExportReport()
    files = TrialFiles(str(trial), report)
    meta = load_trial_meta(str(trial), JobResults(report), files)
    if (trial / "agent" / "trajectory.json").exists():
        return read_atif_trial(str(trial), meta, files), report
    return read_episode_trial(str(trial), meta, files), report


# a document where each level may hold any JSON instead of what ATIF expects there
DEEP = st.integers(1, 700).map(lambda n: json.loads("[" * n + "]" * n))  # orjson reads 1024 levels
COUNT = st.one_of(JSON, st.integers(2 ** 62, 2 ** 64 - 1), st.integers(-(2 ** 63), -1))
HOSTILE_STEP = st.one_of(step(), JSON, st.fixed_dictionaries(
    {"source": st.sampled_from(["agent", "user", "system"])},
    optional={"message": st.one_of(JSON, DEEP), "reasoning_content": JSON,
              "tool_calls": st.one_of(JSON, st.lists(st.fixed_dictionaries(
                  {"function_name": JSON, "arguments": st.one_of(JSON, DEEP)}), max_size=2)),
              "observation": st.one_of(JSON, st.fixed_dictionaries({"results": st.one_of(JSON, st.lists(
                  st.one_of(JSON, st.fixed_dictionaries({"content": st.one_of(JSON, DEEP)})), max_size=2))})),
              "metrics": st.one_of(JSON, st.fixed_dictionaries({"prompt_tokens": COUNT,
                                                                "completion_tokens": COUNT})),
              "is_copied_context": JSON}))
REFERENCE = st.one_of(JSON, st.sampled_from(["trajectory.json", "../x.json", "/etc/passwd", "a\x00b",
                                             "trajectory.cont-1.json", "images"]))
HOSTILE_DOC = st.one_of(JSON, st.fixed_dictionaries(
    {"steps": st.one_of(st.lists(HOSTILE_STEP, max_size=6), JSON)},
    optional={"agent": st.one_of(JSON, st.fixed_dictionaries({"name": JSON, "tool_definitions": JSON})),
              "continued_trajectory_ref": REFERENCE}))
HOSTILE_EPISODE = st.fixed_dictionaries({}, optional={
    "debug.json": st.one_of(JSON, st.fixed_dictionaries({"input": st.one_of(JSON, st.lists(
        st.one_of(JSON, st.fixed_dictionaries({"role": JSON, "content": JSON})), max_size=3))})),
    "response.json": JSON, "response.txt": TEXT, "prompt.txt": TEXT})


def _doc(*steps: dict, **extra: Any) -> dict:
    return {"steps": list(steps), **extra}


AGENT = {"source": "agent", "message": "m"}


# regressions: shapes that once escaped as exceptions other than TraceReadError
@example(result=trial_result("t__1"), doc=_doc({**AGENT, "metrics": {"prompt_tokens": 2 ** 63}}),
         cont=None, episodes=[], atif=True, redact=False)
@example(result=trial_result("t__1"), doc=_doc(AGENT, continued_trajectory_ref="a\x00b"),
         cont=None, episodes=[], atif=True, redact=False)
@example(result=trial_result("t__1"), doc=_doc({**AGENT, "tool_calls": [
    {"function_name": 1, "arguments": json.loads("[" * 300 + "]" * 300)}]}),
         cont=None, episodes=[], atif=True, redact=True)
@example(result=trial_result("t__1"), doc=_doc({**AGENT, "observation": [{"content": "lost?"}]}),
         cont=None, episodes=[], atif=True, redact=False)
@example(result=trial_result("t__1"), doc=_doc(AGENT, continued_trajectory_ref="trajectory.cont-1.json"),
         cont=_doc({"source": "agent", "message": None}, continued_trajectory_ref="trajectory.json"),
         episodes=[], atif=True, redact=False)
@given(result=st.one_of(JSON, st.just(trial_result("t__1"))), doc=HOSTILE_DOC,
       cont=st.one_of(st.none(), HOSTILE_DOC), episodes=st.lists(HOSTILE_EPISODE, max_size=3),
       atif=st.booleans(), redact=st.booleans())
def test_readers_raise_only_trace_read_error(result, doc, cont, episodes, atif, redact):
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "t__1"
        write_json(trial / "result.json", result)
        (trial / "agent").mkdir(parents=True)
        if atif:
            write_json(trial / "agent" / "trajectory.json", doc)
            if cont is not None:
                write_json(trial / "agent" / "trajectory.cont-1.json", cont)
        for n, files in enumerate(episodes):
            folder = trial / "agent" / f"episode-{n}"
            folder.mkdir()
            for name, value in files.items():
                if name.endswith(".txt"):
                    (folder / name).write_text(value)
                else:
                    write_json(folder / name, value)
        try:
            read_trace(trial)
        except TraceReadError as exc:
            assert exc.path.startswith(str(trial)) and exc.reason and "\n" not in exc.reason
        rows, report = export_rows(Path(tmp), redact=redact)  # and the export never raises
        assert report.rows == len(rows)
        # a trial is exported or reported, never dropped in silence
        assert rows or any(s.kind == "trial" for s in report.skips), [s.line() for s in report.skips]


# --- 2. nothing lost ----------------------------------------------------------------------------

def expected_texts(steps: list[dict], whole: bool) -> list[str]:
    """Every text of the steps that rows hold: all of them up to the last episode end (the
    last agent step that is not copied context; its observation, and anything after it,
    belongs to an episode that never came). A subagent (whole) keeps everything."""
    ends = [i for i, s in enumerate(steps) if s["source"] == "agent" and not s.get("is_copied_context")]
    if whole:
        keep = steps if any(s["source"] == "agent" for s in steps) else []
    else:
        keep = steps[:ends[-1] + 1] if ends else []
    texts = []
    for i, s in enumerate(keep):
        texts.append(content_text(s.get("message")))
        if s["source"] != "agent":
            continue
        if s.get("reasoning_content"):
            texts.append(f"<think>{s['reasoning_content']}</think>")
        for call in s.get("tool_calls", []):
            texts.append(json.dumps({"name": call["function_name"], "arguments": call["arguments"]},
                                    ensure_ascii=False))
        if whole or i < len(keep) - 1:
            for result in (s.get("observation") or {}).get("results", []):
                texts.append(content_text(result["content"]))
    return texts


def appears(text: str, contents: list[str]) -> bool:
    if "</think>" in text and "<think>" not in text:  # vLLM: a reply closing a <think> it never opened
        return any(text in c or ("<think>" + text) in c for c in contents)
    return any(text in c for c in contents)


@given(segments=trajectory(), subagent=st.one_of(st.none(), st.lists(step(), min_size=1, max_size=4)),
       episodes=st.sampled_from(["all", "last"]))
def test_atif_nothing_lost(segments, subagent, episodes):
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "t__1"
        write_atif(trial, segments, subagent)
        rows, report = export_rows(Path(tmp), redact=False, episodes=episodes, max_rows_per_trial=10 ** 6)
        assert not [s for s in report.skips if s.kind not in ("trial", "file")
                    or s.kind == "file" and s.reason != "subagent trajectory has no agent steps"], \
            [s.line() for s in report.skips]
        main = [r for r in rows if r["trace_source"] == "main"]
        if episodes == "last":  # the one main row is the last segment that ends an episode
            segments = [seg for seg in segments if any(
                s["source"] == "agent" and not s.get("is_copied_context") for s in seg)][-1:]
        for seg in segments:
            contents = [m["content"] for r in main for m in r["conversations"]]
            for text in expected_texts(seg, whole=False):
                assert appears(text, contents), (text, contents)
        if subagent is not None:
            sub = [r for r in rows if r["trace_source"] == "helper-1"]
            contents = [m["content"] for r in sub for m in r["conversations"]]
            for text in expected_texts(subagent, whole=True):
                assert appears(text, contents), (text, contents)


ROLES = st.sampled_from(["system", "user", "assistant", "tool"])


@st.composite
def episode_folder(draw) -> dict:
    if draw(st.booleans()):
        prompt = {"messages": draw(st.lists(st.fixed_dictionaries({"role": ROLES, "content": CONTENT}),
                                            min_size=1, max_size=4))}
    else:
        prompt = {"prompt": draw(TEXT)}
    reply = draw(st.one_of(st.none(), st.tuples(st.just("txt"), TEXT),
                           st.tuples(st.sampled_from(["content", "text", "message", "output"]), CONTENT)))
    return {**prompt, "reply": reply}


@given(folders=st.lists(episode_folder(), min_size=1, max_size=5), last=st.booleans())
def test_episodes_nothing_lost(folders, last):
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "t__1"
        write_json(trial / "result.json", trial_result("t__1"))
        for n, f in enumerate(folders):
            folder = trial / "agent" / f"episode-{n}"
            folder.mkdir(parents=True)
            if "messages" in f:
                write_json(folder / "debug.json", {"input": f["messages"]})
            else:
                (folder / "prompt.txt").write_bytes(f["prompt"].encode())
            if f["reply"] is not None:
                kind, value = f["reply"]
                if kind == "txt":
                    (folder / "response.txt").write_bytes(value.encode())
                else:
                    write_json(folder / "response.json", {kind: value})
        rows, report = export_rows(Path(tmp), redact=False, episodes="last" if last else "all")
        complete = [n for n, f in enumerate(folders) if f["reply"] is not None]
        # each incomplete episode read is a counted skip, never a silent one; with --episodes
        # last, the folders are read from the end down to the last complete one only
        read = folders if not last else folders[complete[-1]:] if complete else folders
        assert len([s for s in report.skips if s.kind == "episode"]) == sum(f["reply"] is None for f in read)
        expected = complete[-1:] if last else complete
        assert [r["episode"] for r in rows] == [f"episode-{n}" for n in expected]
        for row, n in zip(rows, expected):
            f = folders[n]
            inputs = ([content_text(m["content"]) for m in f["messages"]] if "messages" in f
                      else [f["prompt"]])
            reply = content_text(f["reply"][1])
            roles = [m["role"] for m in f["messages"]] if "messages" in f else ["user"]
            got = [m["content"] for m in row["conversations"]]
            assert len(got) == len(inputs) + 1
            for text, role, want in zip(got, roles + ["assistant"], inputs + [reply]):
                if role == "assistant" and "</think>" in want and "<think>" not in want:
                    want = "<think>" + want  # vLLM's reply closing a <think> it never opened
                assert text == want, (text, want)


@pytest.mark.parametrize("kind,triggers,pattern", PATTERNS, ids=[p[0] for p in PATTERNS])
def test_every_secret_match_contains_a_trigger(kind, triggers, pattern):
    """The redactor runs a pattern only where one of its literal triggers occurs: every
    string the pattern matches must contain one, or a secret would be left in place."""
    if "(?<=" in pattern and pattern.split("(")[0].isalpha():
        # a name led by its trigger, what stands before it checked by lookbehinds (which
        # hypothesis cannot generate from): the pattern starts with a trigger, or each
        # lookbehind holds one
        lead, behinds = pattern.split("(")[0], pattern.split("(?<=")[1:]
        assert lead in triggers or all(any(t in b.split(")")[0] for t in triggers) for b in behinds), kind
        return

    @given(st.from_regex(pattern, fullmatch=True))
    def check(secret):
        assert any(t in secret for t in triggers), (kind, secret)
    check()
