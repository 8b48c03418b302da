"""Issue 6, "nothing lost, nothing leaked": hostile trial directories, exported for real.

The corpus (tests/hostile/corpus.py) is built on disk, one folder per case, and exported
by the CLI in one run (then once more to Parquet). Each case is its own test: its rows,
exactly its skip lines on stderr (one per problem, naming the file and the reason), the
same skips counted in --report, its notes, and checks of what the rows hold. Cases that
need a run of their own (sizes, memory, permissions, a job being written) follow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, atif, make_trial, read_jsonl, run_cli, simple_steps, trial_result
from hostile.corpus import CASES, IMAGES_IN_CORPUS, build_corpus, episode

@dataclass
class CorpusRun:
    root: Path
    rows: list[dict]
    parquet_rows: list[dict]
    report: dict
    stdout: str
    stderr: str

    def skip_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("skipped ")]


def under(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder) + os.sep)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> CorpusRun:
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "corpus", base / "outside"
    build_corpus(root, outside)
    out = base / "out.jsonl"
    proc = run_cli("traces", "export", "-p", str(root), "-o", str(out), "--report",
                   str(base / "report.json"), "--verbose", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    parquet = run_cli("traces", "export", "-p", str(root), "-o", str(base / "out.parquet"),
                      "--workers", "2")
    assert parquet.returncode == 0, parquet.stderr
    return CorpusRun(root, read_jsonl(out), pq.read_table(base / "out.parquet").to_pylist(),
                     json.loads((base / "report.json").read_text()), proc.stdout, proc.stderr)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(corpus: CorpusRun, name: str) -> None:
    case = CASES[name]
    folder = corpus.root / name
    rows = [r for r in corpus.rows if r["source_path"].split(os.sep)[0] == name]
    assert len(rows) == case.rows, [r["source_path"] for r in rows]

    expected = sorted((s.kind, str(folder / s.path) if s.path else str(folder), s.reason)
                      for s in case.skips)
    counted = sorted((s["kind"], s["path"], s["reason"]) for s in corpus.report["skipped"]
                     if under(s["path"], folder))
    assert counted == expected  # exactly these skips, counted in --report

    lines = corpus.skip_lines()
    for kind, path, reason in expected:  # one clear line each on stderr, naming file and reason
        assert lines.count(f"skipped {kind} {path}: {reason}") == 1, (kind, path, reason)
    mine = [line for line in lines if str(folder) + os.sep in line or line.split(": ")[0].endswith(str(folder))]
    assert len(mine) == len(expected), mine

    for rel, note in case.notes:
        assert f"{folder / rel}: {note}" in corpus.report["notes"], corpus.report["notes"]
        assert f"{folder / rel}: {note}" in corpus.stdout

    # the same rows, well-formed, in Parquet (written by 2 workers) as in JSONL
    assert [r for r in corpus.parquet_rows if r["source_path"].split(os.sep)[0] == name] == rows
    for row in rows:
        assert row["conversations"] and all(
            set(m) == {"role", "content"} and isinstance(m["content"], str) for m in row["conversations"])
    if case.check is not None:
        case.check(rows)


def test_corpus_run_is_clean_and_counted(corpus: CorpusRun) -> None:
    assert "Traceback" not in corpus.stderr and "Traceback" not in corpus.stdout
    assert corpus.report["rows"] == len(corpus.rows) == sum(c.rows for c in CASES.values())
    assert len(corpus.report["skipped"]) == sum(len(c.skips) for c in CASES.values())
    assert len(corpus.skip_lines()) == len(corpus.report["skipped"])  # --verbose: all of them
    # every skip is attributed to a case folder: nothing reported about anything else
    assert all(any(under(s["path"], corpus.root / n) for n in CASES) for s in corpus.report["skipped"])
    # images are never a silent loss: counted, and said in the summary
    assert corpus.report["images_replaced"] == IMAGES_IN_CORPUS
    assert f"{IMAGES_IN_CORPUS} images replaced by a text placeholder" in corpus.stdout
    # links out of a trial are never followed: nothing of the foreign files is exported
    assert not any("FOREIGN" in m["content"] for r in corpus.rows for m in r["conversations"])
    assert "root:x:0:0" not in json.dumps(corpus.rows)


# --- sizes: never read what is too big; what is allowed comes out whole ----------------------------

MiB = 1 << 20


def write_big_trajectory(path: Path, message_bytes: int, fill: bytes = b"a") -> None:
    """An ATIF trajectory whose agent message is message_bytes long, written in chunks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b'{"schema_version": "ATIF-v1.7", "steps": [{"step_id": 1, "source": "user", '
                 b'"message": "task"}, {"step_id": 2, "source": "agent", "message": "')
        chunk = fill * MiB
        for _ in range(message_bytes // MiB):
            fh.write(chunk)
        fh.write(fill * (message_bytes % MiB))
        fh.write(b'"}]}')


def run_measured(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI in a subprocess, and the peak RSS (MB) of it and every process it waited for."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:])\n"
            "sys.stderr.write(f'\\nPEAK_RSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
            "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "harbor_hooks", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT),
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = int(re.search(r"PEAK_RSS_KB=(\d+)", proc.stderr).group(1)) / 1024
    return proc, peak


def assert_skipped(report_path: Path, stderr: str, expected: list[tuple[str, str, str]]) -> None:
    """Exactly the expected (kind, path, reason) skips in --report, each one line on stderr."""
    report = json.loads(report_path.read_text())
    assert sorted((s["kind"], s["path"], s["reason"]) for s in report["skipped"]) == sorted(expected)
    for kind, path, reason in expected:
        assert stderr.count(f"skipped {kind} {path}: {reason}") == 1


def test_200mb_message_is_skipped_unread_and_counted(tmp_path):
    """A 200 MB message (in a trajectory, in an episode's response.txt) is over the default
    --max-file-bytes (64 MiB): skipped without being read, counted; a 17 MB one is under it
    but over --max-message-bytes (16 MiB): skipped and counted too. Memory stays flat."""
    job = tmp_path / "job"
    big = make_trial(job, "bigatif__1")
    write_big_trajectory(big / "agent" / "trajectory.json", 200 * MiB)
    episodes = make_trial(job, "bigepisode__2")
    episode(episodes, 0, messages=[{"role": "user", "content": "q0"}], reply="a0")
    folder = episode(episodes, 1, messages=[{"role": "user", "content": "q1"}])
    with open(folder / "response.txt", "wb") as fh:
        for _ in range(200):
            fh.write(b"b" * MiB)
    long_message = make_trial(job, "longmessage__3")
    write_big_trajectory(long_message / "agent" / "trajectory.json", 17 * MiB)
    make_trial(job, "ok__4", trajectory=atif(simple_steps(2)))

    proc, peak_mb = run_measured("traces", "export", "-p", str(job), "-o", str(tmp_path / "o.jsonl"),
                                 "--report", str(tmp_path / "report.json"), "--workers", "1")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    size_atif = (big / "agent" / "trajectory.json").stat().st_size
    expected = [
        ("trial", f"{big}/agent/trajectory.json",
         f"file of {size_atif} bytes exceeds --max-file-bytes ({64 * MiB})"),
        ("episode", f"{folder}/response.txt", f"file of {200 * MiB} bytes exceeds --max-file-bytes ({64 * MiB})"),
        ("trial", f"{long_message}/agent/trajectory.json",
         f"a message of {17 * MiB} bytes exceeds --max-message-bytes ({16 * MiB})"),
    ]
    assert_skipped(tmp_path / "report.json", proc.stderr, expected)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert sorted((r["trial_name"], r["episode"]) for r in rows) == [
        ("bigepisode__2", "episode-0"), ("ok__4", "episode-0"), ("ok__4", "episode-1")]
    assert peak_mb < 250, f"peak RSS {peak_mb:.0f} MB: a skipped file was read into memory"


def test_20mb_message_exported_intact_as_large_string(tmp_path):
    job = tmp_path / "job"
    trial = make_trial(job, "big__1")
    size = 20 * MiB + 17
    write_big_trajectory(trial / "agent" / "trajectory.json", size, fill=b"z")
    out = tmp_path / "o.parquet"
    proc, peak_mb = run_measured("traces", "export", "-p", str(job), "-o", str(out), "--workers", "1",
                                 "--max-file-bytes", str(100 * MiB), "--max-message-bytes", str(100 * MiB))
    assert proc.returncode == 0 and "skipped" not in proc.stderr, proc.stderr
    table = pq.read_table(out)
    content_type = table.schema.field("conversations").type.value_type.field("content").type
    assert str(content_type) == "large_string"
    messages = table.column("conversations").to_pylist()[0]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert len(messages[1]["content"]) == size and messages[1]["content"] == "z" * size
    assert peak_mb < 600  # a few copies of 20 MB, not more


# --- 100k tiny episodes in one trial --------------------------------------------------------------

N_STEPS = 100_000


@pytest.fixture(scope="module")
def many_episodes(tmp_path_factory) -> Path:
    job = tmp_path_factory.mktemp("many") / "job"
    steps = [{"step_id": 1, "source": "user", "message": "task"}]
    steps += [{"step_id": i + 2, "source": "agent", "message": f"r{i}"} for i in range(N_STEPS)]
    make_trial(job, "many__1", trajectory=atif(steps))
    return job


def test_100k_episodes_last_gives_one_row(many_episodes, tmp_path):
    started = time.monotonic()
    proc = run_cli("traces", "export", "-p", str(many_episodes), "--episodes", "last",
                   "-o", str(tmp_path / "o.parquet"), "--report", str(tmp_path / "r.json"),
                   "--workers", "1", timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    assert row["episode"] == f"episode-{N_STEPS - 1}"
    assert len(row["conversations"]) == N_STEPS + 1  # nothing of the trajectory is lost
    assert row["conversations"][-1]["content"] == f"r{N_STEPS - 1}"
    assert json.loads((tmp_path / "r.json").read_text())["skipped"] == []
    assert time.monotonic() - started < 30


def test_100k_episodes_all_capped_and_counted(many_episodes, tmp_path):
    started = time.monotonic()
    proc = run_cli("traces", "export", "-p", str(many_episodes), "--episodes", "all",
                   "-o", str(tmp_path / "o.parquet"), "--report", str(tmp_path / "r.json"),
                   "--workers", "1", timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    table = pq.read_table(tmp_path / "o.parquet", columns=["episode", "n_turns"])
    assert table.num_rows == 1000
    assert table.column("episode").to_pylist() == [f"episode-{i}" for i in range(1000)]
    report = json.loads((tmp_path / "r.json").read_text())
    reason = f"{N_STEPS - 1000} episodes beyond --max-rows-per-trial (1000)"
    assert [(s["kind"], s["reason"]) for s in report["skipped"]] == [("row", reason)]
    assert f"skipped row {many_episodes / 'many__1'}: {reason}" in proc.stderr
    assert time.monotonic() - started < 30


# --- unreadable files ---------------------------------------------------------------------------

def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: as root, drop the capabilities
    that bypass them (setpriv); as another user, nothing to do."""
    if os.geteuid() != 0:
        return []
    if not Path("/usr/bin/setpriv").exists():
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_files_are_reported(tmp_path):
    job = tmp_path / "job"
    unreadable_traj = make_trial(job, "traj__1", trajectory=atif(simple_steps(2)))
    episodes = make_trial(job, "episodes__2")
    episode(episodes, 0, messages=[{"role": "user", "content": "q0"}], reply="a0")
    hidden_reply = episode(episodes, 1, messages=[{"role": "user", "content": "q1"}], reply="a1") / "response.txt"
    unreadable_result = make_trial(job, "result__3", trajectory=atif(simple_steps(2)))
    closed_agent = make_trial(job, "agentdir__4", trajectory=atif(simple_steps(2)))
    closed_trial = make_trial(job, "closed__5", trajectory=atif(simple_steps(2)))
    make_trial(job, "ok__6", trajectory=atif(simple_steps(2)))
    modes = {unreadable_traj / "agent" / "trajectory.json": 0, hidden_reply: 0,
             unreadable_result / "result.json": 0, closed_agent / "agent": 0, closed_trial: 0}
    for path, mode in modes.items():
        path.chmod(mode)
    try:
        proc = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "harbor_hooks", "traces", "export", "-p", str(job),
             "-o", str(tmp_path / "o.jsonl"), "--report", str(tmp_path / "r.json"), "--workers", "1"],
            capture_output=True, text=True, timeout=120, cwd=str(ROOT),
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        for path in modes:
            path.chmod(0o755)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    expected = [
        ("trial", f"{unreadable_traj}/agent/trajectory.json", "permission denied"),
        ("episode", str(hidden_reply), "permission denied"),
        ("trial", f"{unreadable_result}/result.json", "permission denied"),
        ("trial", f"{closed_agent}/agent", "cannot list directory (Permission denied)"),
        ("file", str(closed_trial), "cannot list directory (Permission denied)"),
    ]
    assert_skipped(tmp_path / "r.json", proc.stderr, expected)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert sorted((r["trial_name"], r["episode"]) for r in rows) == [
        ("episodes__2", "episode-0"), ("ok__6", "episode-0"), ("ok__6", "episode-1")]


# --- a job still being written while it is exported -------------------------------------------------

def atif_version(i: int, v: int) -> dict:
    steps = [{"step_id": 1, "source": "user", "message": f"task t{i}"}]
    for k in range(3):
        steps.append({"step_id": k + 2, "source": "agent", "message": f"reply t{i} v{v} k{k}",
                      "observation": {"results": [{"content": f"out t{i} v{v} k{k}"}]}})
    return atif(steps)


def slow_write(path: Path, data: str) -> None:
    """Written in place in two halves, with a pause: a reader may see it empty or cut."""
    with open(path, "w") as fh:
        fh.write(data[:len(data) // 2])
        fh.flush()
        time.sleep(0.003)
        fh.write(data[len(data) // 2:])


class JobWriter(threading.Thread):
    """Keeps adding trials and episodes and rewriting files until stopped.

    New trials follow Harbor's order (agent files first, result.json last: a trial without
    it is still running). Finished trials get their JSON files rewritten in place, which
    a reader may catch empty or cut. (A plain-text reply rewritten in place after
    result.json exists cannot be told from a complete one by any reader; Harbor never
    does that, so neither does this writer.)
    """

    def __init__(self, job: Path):
        super().__init__(daemon=True)
        self.job, self.stop, self.actions, self.error = job, threading.Event(), 0, None
        self.versions: dict[int, int] = {}
        self.running: dict[int, int] = {}  # episode trials still being written: episodes so far

    def new_atif(self, i: int) -> None:
        trial = self.job / f"atif__{i}"
        (trial / "agent").mkdir(parents=True, exist_ok=True)
        self.versions[i] = 0
        slow_write(trial / "agent" / "trajectory.json", json.dumps(atif_version(i, 0)))
        slow_write(trial / "result.json", json.dumps(trial_result(f"atif__{i}")))

    def debug_json(self, j: int, n: int) -> str:
        return json.dumps({"input": [{"role": "user", "content": f"q t{j} e{n}"}]})

    def add_episode(self, j: int) -> None:
        n = self.running.setdefault(j, 0)
        folder = self.job / f"episodes__{j}" / "agent" / f"episode-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        slow_write(folder / "debug.json", self.debug_json(j, n))
        slow_write(folder / "response.txt", f"a t{j} e{n}")
        self.running[j] = n + 1
        if self.running[j] == 4:  # the trial ends: result.json last
            slow_write(self.job / f"episodes__{j}" / "result.json", json.dumps(trial_result(f"episodes__{j}")))
            del self.running[j]

    def run(self) -> None:
        import random
        import shutil
        rng = random.Random(6)
        try:
            next_atif = max(self.versions) + 1 if self.versions else 0
            next_episodes = 0
            while not self.stop.is_set():
                action = rng.choice(["new_atif", "rewrite", "rewrite", "episode", "episode",
                                     "debug", "delete", "result"])
                existing = [i for i in self.versions if (self.job / f"atif__{i}").exists()]
                finished = sorted(int(p.name.split("__")[1]) for p in self.job.glob("episodes__*")
                                  if (p / "result.json").exists())
                if action == "new_atif" or not existing:
                    self.new_atif(next_atif)
                    next_atif += 1
                elif action == "rewrite":
                    i = rng.choice(existing)
                    self.versions[i] += 1
                    slow_write(self.job / f"atif__{i}" / "agent" / "trajectory.json",
                               json.dumps(atif_version(i, self.versions[i])))
                elif action == "episode":
                    if not self.running or rng.random() < 0.3:
                        self.running[next_episodes] = 0
                        next_episodes += 1
                    self.add_episode(rng.choice(sorted(self.running)))
                elif action == "debug" and finished:
                    j = rng.choice(finished)
                    slow_write(self.job / f"episodes__{j}" / "agent" / "episode-1" / "debug.json",
                               self.debug_json(j, 1))
                elif action == "delete":
                    shutil.rmtree(self.job / f"atif__{rng.choice(existing)}", ignore_errors=True)
                elif action == "result":
                    i = rng.choice(existing)
                    slow_write(self.job / f"atif__{i}" / "result.json", json.dumps(trial_result(f"atif__{i}")))
                self.actions += 1
        except Exception as exc:  # pragma: no cover - reported by the test
            self.error = exc


def check_live_row(row: dict) -> None:
    contents = [m["content"] for m in row["conversations"]]
    n = int(row["episode"].split("-")[1])
    if row["trial_name"].startswith("atif__"):
        i = row["trial_name"].split("__")[1]
        v = contents[1].split(" ")[2]  # one version of the file, never a mix of two
        expected = [f"task t{i}"]
        for k in range(n + 1):
            expected += [f"reply t{i} {v} k{k}"] + ([f"out t{i} {v} k{k}"] if k < n else [])
        assert contents == expected, contents
    else:
        j = row["trial_name"].split("__")[1]
        assert contents == [f"q t{j} e{n}", f"a t{j} e{n}"], contents


def test_job_written_during_export(tmp_path):
    job = tmp_path / "job"
    writer = JobWriter(job)
    for i in range(40):
        writer.new_atif(i)
    writer.start()
    runs = []
    try:
        for run in range(4):
            out = tmp_path / f"o{run}.jsonl"
            proc = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--verbose",
                           "--report", str(tmp_path / f"r{run}.json"), "--workers", str(1 + run % 2))
            runs.append((proc, out, tmp_path / f"r{run}.json"))
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None and writer.actions > 50, (writer.error, writer.actions)
    skipped_something = False
    for proc, out, report_path in runs:
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        rows = read_jsonl(out)
        for row in rows:
            check_live_row(row)
        report = json.loads(report_path.read_text())
        assert report["rows"] == len(rows)
        # every trial found is exported or is a counted, named skip: nothing half-written slips by
        trial_skips = [s for s in report["skipped"] if s["kind"] == "trial"]
        assert report["trials_found"] == report["trials_exported"] + len(trial_skips), report
        assert len({s["path"].split(os.sep + "agent")[0].removesuffix("/result.json")
                    for s in trial_skips}) == len(trial_skips)
        for skip in report["skipped"]:
            assert f"skipped {skip['kind']} {skip['path']}: {skip['reason']}" in proc.stderr
        skipped_something |= bool(report["skipped"])
    assert skipped_something, "the writer never caught the export mid-file: the test proves nothing"


def test_image_paths_never_lead_out_of_the_trial(tmp_path):
    """--images keep reads the image files a trace names: never one outside the trial."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG FOREIGN BYTES")
    steps = simple_steps(1)
    steps[1]["message"] = [
        {"type": "image", "source": {"media_type": "image/png", "path": "../../../../../../etc/passwd"}},
        {"type": "image", "source": {"media_type": "image/png", "path": "images/link.png"}},
        {"type": "image", "source": {"media_type": "image/png", "path": "../result.json"}},
        {"type": "image", "source": {"media_type": "image/png", "path": "images/ok.png"}}]
    trial = make_trial(tmp_path / "job", "t__1", trajectory=atif(steps))
    (trial / "agent" / "images").mkdir()
    (trial / "agent" / "images" / "link.png").symlink_to(outside)
    (trial / "agent" / "images" / "ok.png").write_bytes(b"\x89PNG inside")
    (trial / "result.json").write_text((trial / "result.json").read_text().replace(
        '"job_id"', '"env": {"OPENAI_API_KEY": "FOREIGN-sk-key"}, "job_id"'))
    proc = run_cli("traces", "export", "-p", str(tmp_path / "job"), "--images", "keep",
                   "-o", str(tmp_path / "o.parquet"), "--report", str(tmp_path / "r.json"), "--workers", "1")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    agent = trial / "agent"
    expected = sorted([
        ("file", f"{agent}/../../../../../../etc/passwd",
         "media kept as a text placeholder only: path leads outside agent/"),
        ("file", f"{agent}/../result.json", "media kept as a text placeholder only: path leads outside agent/"),
        ("file", f"{agent}/images/link.png",
         "media kept as a text placeholder only: symlink points outside agent/")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted((s["kind"], s["path"], s["reason"]) for s in report["skipped"]) == expected
    data = (tmp_path / "o.parquet").read_bytes() + json.dumps(
        pq.read_table(tmp_path / "o.parquet").to_pylist(), default=repr).encode()
    assert b"FOREIGN" not in data and b"root:x:0:0" not in data
    images = pq.read_table(tmp_path / "o.parquet").to_pylist()[0]["images"]
    assert [(i["path"], i["bytes"]) for i in images] == [("images/ok.png", b"\x89PNG inside")]
    assert report["images_replaced"] == 4
