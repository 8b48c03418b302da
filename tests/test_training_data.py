"""Training-ready rows: JSON columns that decode to objects, results in call order, no null
keys, llamafactory's turns kept apart, --train-on, prompt-completion, --token-ids, and the
draws (--max-per-task, --val-fraction) and --decontaminate. Real CLI runs on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLE_JOB, read_jsonl, run_cli

TOOL_JOB = Path(__file__).parent / "data" / "tool-job"
OPENAI_ROLES = {"system", "user", "assistant", "tool"}


def export(job: Path, out: Path, *flags: str) -> list[dict]:
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(out), *flags, check=True)
    assert "Traceback" not in proc.stderr
    return read_jsonl(out) if out.suffix == ".jsonl" else []


def many_tasks(root: Path, tasks: int, per_task: int) -> Path:
    """A job of tasks x per_task copies of the tool job's trial, each task named apart."""
    trial = next(p for p in TOOL_JOB.iterdir() if p.is_dir())
    for t in range(tasks):
        for k in range(per_task):
            dest = root / f"task-{t}__{k:03d}"
            shutil.copytree(trial, dest)
            result = json.loads((dest / "result.json").read_text())
            result["task_name"], result["trial_name"] = f"task-{t}", dest.name
            (dest / "result.json").write_text(json.dumps(result))
    return root


def test_messages_rows_pass_openai_chat_format_checks(tmp_path):
    """Roles, tool_calls shape, tool_call_id answering a call, tools a list of objects, and
    no key whose value is null (JSONL)."""
    for job in (SAMPLE_JOB, TOOL_JOB):
        for row in export(job, tmp_path / "m.jsonl", "--schema", "messages", "--overwrite"):
            assert row["tools"] is None or (isinstance(row["tools"], list) and all(
                isinstance(t, dict) for t in row["tools"]))
            called: set[str] = set()
            for m in row["messages"]:
                assert m["role"] in OPENAI_ROLES and isinstance(m["content"], str)
                assert None not in m.values()
                for call in m.get("tool_calls", ()):
                    assert set(call) == {"id", "type", "function"} and call["type"] == "function"
                    assert isinstance(call["function"]["name"], str)
                    assert isinstance(call["function"]["arguments"], dict)
                    called.add(call["id"])
                if m["role"] == "tool":
                    assert m["tool_call_id"] in called
                if m["role"] == "assistant":
                    assert m["train"] is True
                else:
                    assert "train" not in m


def test_parquet_and_datasets_give_objects(tmp_path):
    from datasets import Dataset

    export(TOOL_JOB, tmp_path / "m.parquet", "--schema", "messages")
    rows = Dataset.from_parquet(str(tmp_path / "m.parquet"))
    row = rows[len(rows) - 1]
    assert isinstance(row["tools"][0], dict)
    calls = [c for m in row["messages"] for c in (m["tool_calls"] or ())]
    assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)
    # the harbor schema's text is unchanged: tool definitions as JSON text
    export(TOOL_JOB, tmp_path / "h.parquet")
    assert isinstance(Dataset.from_parquet(str(tmp_path / "h.parquet"))[0]["tool_definitions"], str)


def test_results_follow_their_calls_in_call_order(tmp_path):
    """The tool job answers toolu_02 before toolu_01: rows give toolu_01's result first."""
    rows = export(TOOL_JOB, tmp_path / "m.jsonl", "--schema", "messages")
    last = max(rows, key=lambda r: len(r["messages"]))
    answers = [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]
    calls = [c["id"] for m in last["messages"] for c in m.get("tool_calls", ()) if c["id"] in answers]
    assert answers == calls


def test_train_on_last_and_prompt_completion(tmp_path):
    rows = export(TOOL_JOB, tmp_path / "m.jsonl", "--schema", "messages", "--train-on", "last")
    for row in rows:
        flags = [m["train"] for m in row["messages"] if m["role"] == "assistant"]
        assert flags == [False] * (len(flags) - 1) + [True]
    pc = export(TOOL_JOB, tmp_path / "pc.jsonl", "--schema", "prompt-completion", "--train-on", "last")
    assert len(pc) == len(rows)
    for row, full in zip(pc, rows):
        assert row["completion"] == [dict(full["messages"][-1], train=True)]
        assert row["prompt"] + row["completion"] == full["messages"]
    every = export(TOOL_JOB, tmp_path / "pc-all.jsonl", "--schema", "prompt-completion")
    for row in every:
        assert row["completion"][0]["role"] == "assistant" and row["completion"][-1]["role"] == "assistant"
        assert all(m["role"] != "assistant" for m in row["prompt"])


def test_llamafactory_keeps_user_turns_and_results_apart(tmp_path):
    """No user or system text inside an observation; parallel results one observation with
    LLaMA-Factory's own separator between them; human/observation at odd places."""
    for job in (SAMPLE_JOB, TOOL_JOB):
        for row in export(job, tmp_path / "lf.jsonl", "--schema", "llamafactory", "--overwrite"):
            turns = row["conversations"]
            for k, turn in enumerate(turns):
                assert turn["from"] in (("human", "observation") if k % 2 == 0 else ("gpt", "function_call"))
                if turn["from"] == "observation":
                    assert "Performed context summarization" not in turn["value"]
                if turn["from"] in ("gpt", "function_call"):
                    assert turn["train"] is True
            assert isinstance(row["tools"], (str, type(None)))
    rows = read_jsonl(tmp_path / "lf.jsonl")
    last = max(rows, key=lambda r: len(r["conversations"]))
    parallel = [t for t in last["conversations"] if t["from"] == "observation" and "</tool_response>" in t["value"]]
    assert len(parallel) == 1 and parallel[0]["value"].count("<tool_response>") == 1


def test_token_ids_kept_as_columns(tmp_path):
    job = tmp_path / "job"
    shutil.copytree(TOOL_JOB, job)
    path = next(job.glob("*/agent/trajectory.json"))
    doc = json.loads(path.read_text())
    agent_steps = [s for s in doc["steps"] if s["source"] == "agent"]
    for k, step in enumerate(agent_steps):
        step.setdefault("metrics", {}).update(prompt_token_ids=[1, 2, k], completion_token_ids=[7, k],
                                              logprobs=[-0.5, -0.25])
    path.write_text(json.dumps(doc))
    rows = export(job, tmp_path / "t.jsonl", "--schema", "messages", "--token-ids")
    last = max(rows, key=lambda r: len(r["messages"]))
    assert last["completion_token_ids"] == [[7, k] for k in range(len(agent_steps))]
    assert last["prompt_token_ids"][1] == [1, 2, 1] and last["logprobs"][0] == [-0.5, -0.25]
    plain = export(job, tmp_path / "p.jsonl", "--schema", "messages")
    assert "completion_token_ids" not in plain[0]


def test_max_per_task_and_val_fraction(tmp_path):
    job = many_tasks(tmp_path / "job", tasks=10, per_task=4)
    out = tmp_path / "o.jsonl"
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--max-per-task", "2",
                   "--val-fraction", "0.3", "--seed", "7", check=True)
    train = read_jsonl(tmp_path / "o-train.jsonl")
    validation = read_jsonl(tmp_path / "o-validation.jsonl")
    tasks = {r["task"] for r in train + validation}
    per_task = {t: len({r["trial_name"] for r in train + validation if r["task"] == t}) for t in tasks}
    assert set(per_task.values()) == {2}  # 2 of 4 trials of each task
    train_tasks, val_tasks = {r["task"] for r in train}, {r["task"] for r in validation}
    assert len(val_tasks) == 3 and not train_tasks & val_tasks  # no task on both sides
    assert "--max-per-task=" in proc.stdout and "validation=" in proc.stdout
    again = tmp_path / "again.jsonl"
    run_cli("traces", "export", "-p", str(job), "-o", str(again), "--max-per-task", "2",
            "--val-fraction", "0.3", "--seed", "7", "--workers", "1", check=True)
    assert read_jsonl(tmp_path / "again-validation.jsonl") == validation  # deterministic


def test_decontaminate_drops_planted_overlaps(tmp_path):
    job = many_tasks(tmp_path / "job", tasks=3, per_task=1)
    leaked = next(job.glob("task-1__*/agent/trajectory.json"))
    doc = json.loads(leaked.read_text())
    user = next(s for s in doc["steps"] if s["source"] == "user")
    user["message"] = "Solve this: given an array of integers nums and an integer target return indices"
    leaked.write_text(json.dumps(doc))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"prompt": "Given an array of integers nums and an integer target, "
                                           "return indices of the two numbers."}) + "\n")
    out = tmp_path / "o.jsonl"
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--decontaminate", str(bench), check=True)
    rows = read_jsonl(out)
    assert {r["task"] for r in rows} == {"task-0", "task-2"}
    assert "--decontaminate=" in proc.stdout
    report = tmp_path / "r.json"
    run_cli("traces", "export", "-p", str(job), "-o", str(out), "--decontaminate", str(bench),
            "--decontaminate-ngram", "30", "--report", str(report), "--overwrite", check=True)
    assert {r["task"] for r in read_jsonl(out)} == {"task-0", "task-1", "task-2"}  # no 30-word overlap
    missing = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--overwrite",
                      "--decontaminate", str(tmp_path / "nope.jsonl"))
    assert missing.returncode != 0 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr


def local_tokenizer(folder: Path, template: str) -> Path:
    """A tokenizer built here (a word-level vocabulary of the rows' words), saved to folder."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "<|im_start|>", "<|im_end|>"]
    words = {w for line in SAMPLE_WORDS for w in line.split()}
    vocab = {w: i for i, w in enumerate(specials + sorted(words))}
    model = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    model.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="[UNK]",
                                        additional_special_tokens=specials[1:])
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return folder


SAMPLE_WORDS = ["user assistant system tool"]
# ChatML, with and without the marks of what the assistant generates
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}"
          "{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}{% else %}{{ m['content'] }}"
          "<|im_end|>{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize("marked", [True, False], ids=["generation-marks", "prefix-renders"])
def test_tokenizer_labels_only_trained_assistant_tokens(tmp_path, marked):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    template = CHATML if marked else CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    folder = local_tokenizer(tmp_path / "tok", template)
    rows = export(SAMPLE_JOB, tmp_path / "t.jsonl", "--schema", "messages", "--tokenizer", str(folder),
                  "--train-on", "last")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert rows
    for row in rows:
        messages = [{k: v for k, v in m.items()} for m in row["messages"]]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        assert row["input_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]
        assert row["n_tokens"] == len(row["input_ids"])
        # the labelled tokens are exactly the last assistant message's, and its end mark
        last = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        labelled = [t for t in row["labels"] if t != -100]
        assert labelled == last + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    few = export(SAMPLE_JOB, tmp_path / "few.jsonl", "--schema", "messages", "--tokenizer", str(folder),
                 "--max-tokens", "200")
    assert len(few) < len(rows) and all(r["n_tokens"] <= 200 for r in few)


def test_outside_attack_findings(tmp_path):
    """What an outside tester found: bad tokenizer folders are usage errors; arguments that
    are no JSON object, results paired by position, malformed token ids and an opening
    assistant turn under --alternate-roles are counted, not silent."""
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_cli("traces", "export", "--sample", "--schema", "messages", "--tokenizer", str(empty),
                  "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--tokenizer" in bad.stderr
    job = tmp_path / "job"
    shutil.copytree(TOOL_JOB, job)
    path = next(job.glob("*/agent/trajectory.json"))
    doc = json.loads(path.read_text())
    agents = [s for s in doc["steps"] if s["source"] == "agent"]
    agents[1]["tool_calls"][0]["arguments"] = 42
    for result in agents[0]["observation"]["results"]:
        result.pop("source_call_id")
    agents[2].setdefault("metrics", {})["completion_token_ids"] = ["a", "b"]
    doc["steps"] = [s for s in doc["steps"] if s["source"] == "agent"]  # opens on the assistant
    path.write_text(json.dumps(doc))
    report = tmp_path / "r.json"
    rows = export(job, tmp_path / "a.jsonl", "--schema", "messages", "--alternate-roles", "--token-ids",
                  "--report", str(report))
    counts = json.loads(report.read_text())
    assert counts["reshaped"]["tool-call arguments that are no JSON object (kept as they are)"] >= 1
    assert counts["reshaped"]["tool results paired with a call by position (ids missing)"] >= 2
    assert counts["reshaped"]["empty user turns put before an opening assistant turn"] >= 1
    assert any("completion_token_ids is not a list of numbers" in k for k in counts["skipped_counts"])
    assert all(r["messages"][0]["role"] == "user" for r in rows)


def test_calls_without_ids_answered_in_order_and_unnamed_tasks_drawn_apart(tmp_path):
    job = tmp_path / "job"
    shutil.copytree(TOOL_JOB, job)
    path = next(job.glob("*/agent/trajectory.json"))
    doc = json.loads(path.read_text())
    first = next(s for s in doc["steps"] if s["source"] == "agent")
    for call in first["tool_calls"]:
        call.pop("tool_call_id")
    first["observation"]["results"].sort(key=lambda r: r["source_call_id"])  # in call order
    path.write_text(json.dumps(doc))
    rows = export(job, tmp_path / "m.jsonl", "--schema", "messages")
    last = max(rows, key=lambda r: len(r["messages"]))
    calls = [c["id"] for c in last["messages"][2]["tool_calls"]]
    assert [m.get("tool_call_id") for m in last["messages"][3:5]] == calls  # answered, in order
    # three trials with no task name: each its own task for --max-per-task
    unnamed = tmp_path / "unnamed"
    for k in range(3):
        dest = unnamed / f"t__{k}"
        shutil.copytree(next(p for p in TOOL_JOB.iterdir() if p.is_dir()), dest)
        result = json.loads((dest / "result.json").read_text())
        result.pop("task_name", None)
        (dest / "config.json").write_text("{}")
        (dest / "result.json").write_text(json.dumps(result))
    proc = run_cli("traces", "export", "-p", str(unnamed), "-o", str(tmp_path / "u.jsonl"), "--rows", "trajectory",
                   "--max-per-task", "1", check=True)
    assert len(read_jsonl(tmp_path / "u.jsonl")) == 3
    grouped = many_tasks(tmp_path / "grouped", tasks=2, per_task=3)
    proc = run_cli("traces", "export", "-p", str(grouped), "-o", str(tmp_path / "g.jsonl"), "--rows", "trajectory",
                   "--max-per-task", "1", check=True)
    assert "2 rows from 2 of 6 trials (4 filtered out)" in proc.stdout
