"""Fuzz the export over mutated trial directories (hypothesis-driven).

Each example copies one seed trial (tests/fuzz/seeds/ or the bundled sample job) into a
fresh job, applies 1-4 mutations (truncate, flip or insert bytes, invalid UTF-8, NUL,
change a JSON value's type, delete a key, nulls, deep nesting, odd references, files
turned into folders and back, symlinks out of the trial or into loops) and exports it
with random options. The export must never raise: bad input is a TraceReadError turned
into a counted skip. Every trial found must be exported or reported, every row written
must be well-formed, and now and then the real CLI runs on the mutated job: exit 0, no
traceback, a readable --report.

    nice -n 19 python tests/fuzz/run_fuzz.py --minutes 12            # the long run, logs
    python tests/fuzz/run_fuzz.py --examples 50                      # a smoke run

A failing example is shrunk by hypothesis, its job saved under tests/fuzz/crashes/,
and written to the log; the run goes on with the next batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harbor_hooks.options import ExportOptions  # noqa: E402
from harbor_hooks.pipeline import run_export  # noqa: E402
from harbor_hooks.outputs.files import output_files  # noqa: E402

SEEDS = HERE / "seeds"
SAMPLE_JOB = ROOT / "harbor_hooks" / "samples" / "sample-job"
CRASHES = HERE / "crashes"
OUTSIDE_FILE = "/etc/hostname"  # a readable file outside every trial


def seed_trials() -> list[Path]:
    """Seed trials: the small corpus kept here, then the sample job's trials."""
    found = sorted(p for p in SEEDS.iterdir() if (p / "agent").is_dir())
    found += sorted(p for p in SAMPLE_JOB.iterdir() if (p / "agent").is_dir())
    return found


SEED_TRIALS = seed_trials()

# ---------------------------------------------------------------------------------------
# mutations


def json_paths(value: Any, limit: int = 4000) -> list[tuple]:
    """Every path (keys/indices) into a JSON value, breadth first, without recursion."""
    paths: list[tuple] = [()]
    queue = [((), value)]
    while queue and len(paths) < limit:
        path, node = queue.pop(0)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            paths.append(path + (key,))
            queue.append((path + (key,), child))
    return paths


def get_at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def set_at(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    parent = get_at(value, path[:-1])
    parent[path[-1]] = new
    return value


def delete_at(value: Any, path: tuple) -> Any:
    if not path:
        return None
    parent = get_at(value, path[:-1])
    del parent[path[-1]]
    return value


def deep(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = [leaf]
    return leaf


ODD_VALUES = [
    None, [], {}, "", 0, -1, 1.5, True, "1.0", "3", "null", 2 ** 63, 2 ** 64, 10 ** 30, float("nan"),
    float("inf"), "a\x00b", "\ud800 lone surrogate", "\u202e\ufeff", "x" * 5000,
    [{"type": "image", "source": {"media_type": "image/png", "path": "../../../etc/passwd"}}],
    [{"type": "image", "source": "x"}, {"type": "image_url", "image_url": {"url": "data:x"}}],
    [{"type": "text", "text": None}, {"type": "text"}, 5, None, "part"],
    {"results": [{"content": "x", "subagent_trajectory_ref": [{"trajectory_path": "/etc/passwd"}]}]},
    "trajectory.json", "../../x.json", "/etc/passwd", "trajectory.cont-1.json", "a\x00b.json",
    [{"tool_call_id": None, "function_name": None, "arguments": None}],
    {"prompt_tokens": 2 ** 63, "completion_tokens": -5},
]

NUMBERS = [None, "1.0", "3", -1, 2 ** 63, 2 ** 64 - 1, 10 ** 30, 1e308, float("nan"), True, [1]]
NAMES = [None, 5, "", {"x": 1}, ["a"], "a\x00b", "\ud800", "x" * 3000]
REFS = ["trajectory.json", "trajectory.cont-1.json", "../../x.json", "/etc/passwd", "a\x00b",
        "", 5, None, ["trajectory.json"], "images", "../result.json"]
CONTENT = [None, 5, {"text": "t"}, [], [None, 5, "s", {"type": "text", "text": None}],
           [{"type": "image", "source": {"media_type": "image/png", "path": "../../../etc/passwd"}}],
           [{"type": "image", "source": {"path": "images/b.png"}}, {"type": "text", "text": "x"}],
           "\x00\x01\x1b[31m", "\ud800\udfff", deep(400, "d")]
CONTAINERS = [None, "s", 5, {}, [], [None], [5, "s", []], {"a": None}, deep(300, {})]
ODD_FOR: dict[str, list] = {
    **dict.fromkeys(["steps", "tool_calls", "results", "input", "observation", "agent", "config",
                     "agents", "agent_info", "model_info", "verifier_result", "rewards",
                     "exception_info", "stats", "evals", "reward_stats", "exception_stats",
                     "subagent_trajectory_ref", "tool_definitions", "metrics", "source"],
                    CONTAINERS),
    **dict.fromkeys(["message", "content", "reasoning_content", "text", "arguments"], CONTENT),
    **dict.fromkeys(["prompt_tokens", "completion_tokens", "reward", "step_id",
                     "is_copied_context"], NUMBERS),
    **dict.fromkeys(["function_name", "tool_call_id", "source_call_id", "name", "model_name",
                     "role", "type", "trial_name", "task_name", "started_at", "job_id",
                     "exception_type"], NAMES),
    **dict.fromkeys(["continued_trajectory_ref", "trajectory_path", "path"], REFS),
}

JSON_OPS = ["odd", "wrap_list", "wrap_dict", "to_str", "delete", "deep", "dup"]
BYTE_OPS = ["truncate", "flip", "invalid_utf8", "nul", "empty", "garbage"]
FS_OPS = ["delete", "to_dir", "symlink_out", "symlink_loop", "symlink_inside", "agent_to_file",
          "episode_to_file", "copy_as_subagent", "add_continuation"]


def mutate_json(data: bytes, draw) -> bytes:
    try:
        value = json.loads(data)
    except ValueError:
        return data
    paths = json_paths(value)
    # half the time aim at a field the readers interpret, with values odd for that field
    keys = sorted({p[-1] for p in paths if p and p[-1] in ODD_FOR}, key=str)
    if keys and draw(st.booleans()):
        key = keys[draw(st.integers(0, len(keys) - 1))]
        aimed = [p for p in paths if p and p[-1] == key]
        path = aimed[draw(st.integers(0, len(aimed) - 1))]
        candidates = ODD_FOR[key]
        op = "aimed"
    else:
        path = paths[draw(st.integers(0, len(paths) - 1))]
        op = draw(st.sampled_from(JSON_OPS))
    try:
        if op == "aimed":
            value = set_at(value, path, candidates[draw(st.integers(0, len(candidates) - 1))])
        elif op == "odd":
            value = set_at(value, path, ODD_VALUES[draw(st.integers(0, len(ODD_VALUES) - 1))])
        elif op == "wrap_list":
            value = set_at(value, path, [get_at(value, path)])
        elif op == "wrap_dict":
            value = set_at(value, path, {"value": get_at(value, path)})
        elif op == "to_str":
            value = set_at(value, path, json.dumps(get_at(value, path)))
        elif op == "delete":
            value = delete_at(value, path)
        elif op == "deep":
            value = set_at(value, path, deep(draw(st.sampled_from([50, 300, 1100])), get_at(value, path)))
        elif op == "dup" and isinstance(get_at(value, path[:-1]) if path else None, list):
            parent = get_at(value, path[:-1])
            parent.insert(path[-1], get_at(value, path))
        return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    except (KeyError, IndexError, TypeError, RecursionError):
        return data


def mutate_bytes(path: Path, draw) -> None:
    data = path.read_bytes()
    op = draw(st.sampled_from(BYTE_OPS))
    n = len(data)
    if op == "truncate":
        data = data[:draw(st.integers(0, max(0, n - 1)))]
    elif op == "flip" and n:
        i = draw(st.integers(0, n - 1))
        data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
    elif op in ("invalid_utf8", "nul"):
        i = draw(st.integers(0, n))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\x80\x80"])) \
            if op == "invalid_utf8" else b"\x00"
        data = data[:i] + junk + data[i:]
    elif op == "empty":
        data = b""
    elif op == "garbage":
        data = draw(st.binary(max_size=64))
    path.write_bytes(data)


def mutate_fs(trial: Path, files: list[Path], dirs: list[Path], draw) -> None:
    op = draw(st.sampled_from(FS_OPS))
    target = files[draw(st.integers(0, len(files) - 1))] if files else None
    if op == "delete" and target is not None:
        target.unlink()
    elif op == "to_dir" and target is not None:
        target.unlink()
        target.mkdir()
        (target / "inner.json").write_text("{}")
    elif op == "symlink_out" and target is not None:
        target.unlink()
        target.symlink_to(draw(st.sampled_from([OUTSIDE_FILE, "/etc", "/nonexistent/x.json",
                                                "../../../../../etc/hostname"])))
    elif op == "symlink_loop" and target is not None:
        target.unlink()
        target.symlink_to(target.name)
    elif op == "symlink_inside" and target is not None and len(files) > 1:
        other = files[draw(st.integers(0, len(files) - 1))]
        if other != target:
            target.unlink()
            target.symlink_to(os.path.relpath(other, target.parent))
    elif op == "agent_to_file" and (trial / "agent").is_dir() and not (trial / "agent").is_symlink():
        shutil.rmtree(trial / "agent")
        (trial / "agent").write_text("not a folder")
    elif op == "episode_to_file" and dirs:
        folder = dirs[draw(st.integers(0, len(dirs) - 1))]
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    elif op == "copy_as_subagent" and target is not None and (trial / "agent").is_dir():
        copy = trial / "agent" / f"trajectory.fuzz-{draw(st.integers(0, 3))}.json"
        if copy != target:
            shutil.copyfile(target, copy)
    elif op == "add_continuation" and (trial / "agent" / "trajectory.json").is_file():
        main = trial / "agent" / "trajectory.json"
        try:
            doc = json.loads(main.read_bytes())
        except ValueError:
            return
        if isinstance(doc, dict):
            doc["continued_trajectory_ref"] = draw(st.sampled_from(
                ["trajectory.json", "trajectory.cont-9.json", "../result.json", "/etc/passwd"]))
            (trial / "agent" / "trajectory.cont-9.json").write_text(json.dumps(
                {**doc, "continued_trajectory_ref": "trajectory.json"}))
            main.write_text(json.dumps(doc))


def listing(trial: Path) -> tuple[list[Path], list[Path]]:
    files, dirs = [], []
    for path in sorted(trial.rglob("*")):
        if path.is_symlink():
            continue
        if path.is_file():
            files.append(path)
        elif path.is_dir() and path.name.startswith("episode-"):
            dirs.append(path)
    return files, dirs


# ---------------------------------------------------------------------------------------
# checks

OPTION_CHOICES = {
    "episodes": ["all", "last"],
    "sharegpt": [False, True],
    "subagents": [True, False],
    "instruction_metadata": [False, True],
    "verifier_metadata": [False, True],
    "redact": [True, False],
    "schema": ["harbor", "messages", "llamafactory"],
    "rows": ["episode", "trajectory"],
    "images": ["placeholder", "keep"],
    "max_rows_per_trial": [1000, 2],
    "max_message_bytes": [16 << 20, 2000],
}


def export_options(draw) -> ExportOptions:
    fields = set(ExportOptions.model_fields)
    chosen = {k: draw(st.sampled_from(v)) for k, v in OPTION_CHOICES.items() if k in fields}
    return ExportOptions(**chosen)


def write_file(shards: list[str], target: str, schema) -> None:
    with output_files(target, schema, ["train"]) as add:
        for path in shards:
            add({"train": path})


def check_rows(rows: list[dict], opts: ExportOptions) -> None:
    for row in rows:
        messages = row.get("messages") if "messages" in row else row.get("conversations")
        assert isinstance(messages, list), row
        for message in messages:
            assert isinstance(message, dict), message
            text = message.get("content", message.get("value"))
            assert text is None or isinstance(text, str), message
        for key in ("trial_name", "episode", "agent", "model"):
            assert isinstance(row.get(key), str), (key, row.get(key))


def export_and_check(job: Path, opts: ExportOptions, run_cli: bool) -> dict[str, Any]:
    result = run_export(str(job), opts.model_copy(update={"workers": 1}))
    try:
        report = result.report
        out = job.parent / "out"
        out.mkdir(exist_ok=True)
        rows: list[dict] = []
        for split, paths in result.shards.items():
            write_file(paths, str(out / f"{split}.parquet"), result.schema)
            rows += pq.read_table(out / f"{split}.parquet").to_pylist()
            # JSONL of an --images keep export fails on the image bytes (output.py, reported)
            if getattr(opts, "images", "placeholder") != "keep":
                write_file(paths, str(out / f"{split}.jsonl"), result.schema)
                with open(out / f"{split}.jsonl", "rb") as fh:
                    assert sum(1 for _ in fh) == len(rows) or split != "train"
        assert len(rows) == report.rows, (len(rows), report.rows)
        check_rows(rows, opts)
        # nothing dropped silently: every trial found is exported, filtered, or reported
        exported = {r["source_path"] for r in rows if r.get("source_path")}
        for trial in (p for p in job.iterdir() if (p / "agent").is_dir() and not p.is_symlink()):
            name = trial.name
            reported = any(s.path == str(trial) or s.path.startswith(str(trial) + os.sep)
                           for s in report.skips)
            assert name in exported or reported or report.trials_filtered, (
                f"trial {name} neither exported nor reported", [s.line() for s in report.skips])
        json.dumps(report.to_dict())
    finally:
        result.cleanup()
    if run_cli:
        proc = subprocess.run(
            [sys.executable, "-m", "harbor_hooks", "traces", "export", "-p", str(job),
             "-o", str(job.parent / "cli.parquet"), "--report", str(job.parent / "report.json"),
             "--workers", "1", "--verifier-metadata", "--sharegpt"],
            capture_output=True, text=True, timeout=120, cwd=str(ROOT),
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
        cli_report = json.loads((job.parent / "report.json").read_text())
        assert cli_report["rows"] == pq.read_metadata(job.parent / "cli.parquet").num_rows
    return {"rows": report.rows, "skips": len(report.skips)}


STATS = {"examples": 0, "rows": 0, "skips": 0, "cli_runs": 0}


def fuzz_one(data: st.DataObject, cli_every: int) -> None:
    draw = data.draw
    source = SEED_TRIALS[draw(st.integers(0, len(SEED_TRIALS) - 1), label="seed")]
    work = Path(tempfile.mkdtemp(prefix="harbor-fuzz-"))
    try:
        job = work / "job"
        job.mkdir()
        trial = job / source.name
        shutil.copytree(source, trial, symlinks=True)
        if draw(st.booleans(), label="job result.json"):
            shutil.copyfile(SEEDS / "result.json", job / "result.json")
        for _ in range(draw(st.integers(1, 4), label="mutations")):
            files, dirs = listing(trial)
            kind = draw(st.sampled_from(["json", "json", "json", "bytes", "fs"]), label="kind")
            json_files = [f for f in files if f.suffix == ".json"]
            if kind == "json" and json_files:
                target = json_files[draw(st.integers(0, len(json_files) - 1))]
                target.write_bytes(mutate_json(target.read_bytes(), draw))
            elif kind == "bytes" and files:
                mutate_bytes(files[draw(st.integers(0, len(files) - 1))], draw)
            elif kind == "fs":
                mutate_fs(trial, files, dirs, draw)
        opts = export_options(draw)
        run_cli = cli_every > 0 and draw(st.integers(0, cli_every - 1), label="cli") == 0
        outcome = export_and_check(job, opts, run_cli)
        STATS["examples"] += 1
        STATS["rows"] += outcome["rows"]
        STATS["skips"] += outcome["skips"]
        STATS["cli_runs"] += run_cli
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_test(max_examples: int, cli_every: int, database: str | None):
    @settings(max_examples=max_examples, deadline=None, database=None if database is None else
              __import__("hypothesis.database", fromlist=["DirectoryBasedExampleDatabase"])
              .DirectoryBasedExampleDatabase(database),
              suppress_health_check=list(HealthCheck), print_blob=True,
              phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
    @given(st.data())
    def fuzz(data):
        fuzz_one(data, cli_every)
    return fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=0, help="run for this long (batches)")
    parser.add_argument("--examples", type=int, default=100, help="examples per batch")
    parser.add_argument("--cli-every", type=int, default=60, help="run the CLI on ~1 in N examples")
    parser.add_argument("--seed", type=int, default=0, help="first batch seed")
    parser.add_argument("--log", type=Path, default=None, help="append results to this log")
    args = parser.parse_args(argv)

    started = time.monotonic()
    deadline = started + args.minutes * 60
    log_lines: list[str] = []

    def log(line: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] {line}", flush=True)
        log_lines.append(f"[{stamp}] {line}")
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(f"[{stamp}] {line}\n")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=str(ROOT)).stdout.strip() or "unknown"
    log(f"fuzz start {dt.datetime.now().isoformat(timespec='seconds')}: commit {commit} (+ working tree), "
        f"{len(SEED_TRIALS)} seed trials, {args.examples} examples per batch, "
        f"python {sys.version.split()[0]}, hypothesis {__import__('hypothesis').__version__}")
    failures = 0
    batch = 0
    while True:
        batch_seed = args.seed + batch
        test = seed(batch_seed)(make_test(args.examples, args.cli_every, None))
        before = STATS["examples"]
        try:
            test()
        except Exception as exc:  # hypothesis re-raises the shrunk failure
            failures += 1
            CRASHES.mkdir(exist_ok=True)
            text = "".join(traceback.format_exception(exc))
            (CRASHES / f"batch-{batch_seed}.txt").write_text(text)
            log(f"batch {batch_seed}: FAILURE {type(exc).__name__}: {str(exc)[:500]}")
            log(f"  full traceback in {CRASHES / f'batch-{batch_seed}.txt'}")
        batch += 1
        elapsed = time.monotonic() - started
        log(f"batch {batch_seed}: {STATS['examples'] - before} examples; total {STATS['examples']} "
            f"examples, {STATS['rows']} rows, {STATS['skips']} reported skips, "
            f"{STATS['cli_runs']} CLI runs, {elapsed:.0f} s")
        if args.minutes <= 0 or time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - started
    log(f"fuzz end: {STATS['examples']} examples in {elapsed:.0f} s ({elapsed / 60:.1f} min), "
        f"{batch} batches, {STATS['cli_runs']} CLI runs, {failures} failing batches: "
        + ("PASS (no crash)" if failures == 0 else "FAIL"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
