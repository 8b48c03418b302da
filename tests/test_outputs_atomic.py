"""Outputs are atomic and deterministic.

An export killed (SIGKILL) or failing while it writes leaves at the target path only the
previous file or nothing, never a file that looks complete; its temporary file is named
`.<name>.tmp-*`. The same export run twice, or with 1 and 2 workers, writes byte-identical
.parquet and .jsonl files (and the same report).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

import harbor_hooks.outputs.files as output
from conftest import ROOT, atif, make_trial, run_cli, simple_steps, write_json
from harbor_hooks.options import ExportOptions, OutputOptions
from harbor_hooks.pipeline import run_export
from harbor_hooks.pipeline.tasks import export_task

# The CLI with its writers slowed down (a pause after each batch and each row group), so
# that a SIGKILL lands mid-write every time; the writing itself is the real one.
SLOW_CLI = """
import sys, time
import pyarrow.parquet as pq
import harbor_hooks.outputs.files as out
write_table = pq.ParquetWriter.write_table
def slow_write_table(self, *args, **kwargs):
    write_table(self, *args, **kwargs)
    time.sleep(0.3)
pq.ParquetWriter.write_table = slow_write_table
iter_batches = out.iter_batches
def slow_batches(paths):
    for batch in iter_batches(paths):
        yield batch
        time.sleep(0.3)
out.iter_batches = slow_batches
from harbor_hooks.cli import main
sys.argv = ["harbor-hooks", *sys.argv[1:]]
main()
"""


def job_of(job: Path, trials: int, prefix: str = "") -> Path:
    for t in range(trials):
        make_trial(job, f"t__{t:03d}", trajectory=atif(simple_steps(3, prefix=f"{prefix}{t} ")))
    return job


def leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def kill_mid_write(job: Path, target: Path) -> str:
    """Start the export, SIGKILL it once its temporary output holds rows; the tmp name."""
    scratch = job.parent / "scratch"  # a killed export cannot remove its shards: not in /tmp
    scratch.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, "traces", "export", "-p", str(job),
                             "-o", str(target), "--workers", "1"], cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 60
    seen = None
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-")]
        try:
            if tmp and tmp[0].stat().st_size > 64:  # rows in it, not a Parquet header alone
                seen = tmp[0].name
                workers = psutil.Process(proc.pid).children()
                os.kill(proc.pid, signal.SIGKILL)
                break
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    proc.wait(30)
    assert seen is not None, "the export ended before it could be killed mid-write"
    assert proc.returncode == -signal.SIGKILL
    # the output is written while the workers go on: orphaned, they end too
    assert workers
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers left running: {alive}"
    return seen


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sigkill_while_writing_leaves_previous_file(tmp_path, suffix):
    target = tmp_path / "out" / f"rows{suffix}"
    run_cli("traces", "export", "-p", str(job_of(tmp_path / "old", 1, "old ")), "-o", str(target),
            "--workers", "1", check=True)
    previous = target.read_bytes()
    tmp_name = kill_mid_write(job_of(tmp_path / "job", 400), target)
    assert target.read_bytes() == previous  # the previous output, untouched
    # the kill leaves a temporary file, named so that it cannot pass for the output
    assert leftovers(target.parent, target.name) == [tmp_name]
    assert re.fullmatch(rf"\.{re.escape(target.name)}\.tmp-[0-9a-f]+", tmp_name)


def test_sigkill_while_writing_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "rows.parquet"
    target.parent.mkdir()
    kill_mid_write(job_of(tmp_path / "job", 400), target)
    assert not target.exists()


def _fail_after(n: int):
    calls = {"n": 0}

    def hook(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError(28, "No space left on device")
    return hook


def write_file(shards: list[str], target: str, schema) -> None:
    """One split's shards to a .parquet or .jsonl file, as an export writes them."""
    with output.output_files(target, schema, ["train"]) as add:
        for path in shards:
            add({"train": path})


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "report"])
def test_failure_during_write_keeps_previous_file(tmp_path, monkeypatch, kind):
    job = tmp_path / "job"
    for t in range(3):
        make_trial(job, f"t__{t}", trajectory=atif(simple_steps(3)))
    result = run_export(str(job), ExportOptions(workers=1))
    target = tmp_path / f"out.{'json' if kind == 'report' else kind}"
    target.write_text("previous")
    try:
        if kind == "jsonl":
            real = output.orjson.dumps
            fail = _fail_after(4)
            monkeypatch.setattr(output.orjson, "dumps", lambda *a, **k: (fail(), real(*a, **k))[1])
            with pytest.raises(OSError):
                write_file(result.shards["train"], str(target), result.schema)
        elif kind == "parquet":
            monkeypatch.setattr(pq.ParquetWriter, "write_table", _fail_after(0))
            with pytest.raises(OSError):
                write_file(result.shards["train"], str(target), result.schema)
        else:
            from harbor_hooks import publish
            monkeypatch.setattr(publish.orjson, "dumps", _fail_after(0))
            with pytest.raises(OSError):
                publish.write_report(result.report, str(target))
    finally:
        result.cleanup()
    assert target.read_text() == "previous"
    assert leftovers(tmp_path, target.name) == ["job"]  # the temporary file is gone too


# --- deterministic outputs ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_job(tmp_path_factory) -> Path:
    """More trials than one worker task holds (64), in both formats, with subagents and skips."""
    job = tmp_path_factory.mktemp("det") / "job"
    for t in range(150):
        if t % 3 == 0:
            trial = make_trial(job, f"ep__{t:03d}", reward=float(t % 2))
            for n in range(3):
                folder = trial / "agent" / f"episode-{n}"
                write_json(folder / "debug.json", {"input": [{"role": "user", "content": f"q{t}.{n} é"}]})
                if n < 2:
                    (folder / "response.txt").write_text(f"a{t}.{n}")
        else:
            trial = make_trial(job, f"atif__{t:03d}", trajectory=atif(simple_steps(1 + t % 4, prefix=f"{t} ")),
                               reward=float(t % 2))
            if t % 5 == 0:
                write_json(trial / "agent" / "trajectory.summary-1.json", atif(simple_steps(1, prefix="sub ")))
            if t % 7 == 0:
                (trial / "agent" / "trajectory.summary-2.json").write_text("{cut")
    return job


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_outputs_byte_identical_across_runs_and_workers(mixed_job, tmp_path, suffix):
    digests = {}
    reports = {}
    for name, workers in [("w1a", "1"), ("w1b", "1"), ("w2", "2")]:
        out = tmp_path / f"{name}{suffix}"
        report = tmp_path / f"{name}.report.json"
        run_cli("traces", "export", "-p", str(mixed_job), "-o", str(out), "--report", str(report),
                "--workers", workers, "--sharegpt", "--verifier-metadata", check=True)
        digests[name] = digest(out)
        reports[name] = json.loads(report.read_text())
    assert digests["w1a"] == digests["w1b"] == digests["w2"], digests
    assert reports["w1a"] == reports["w1b"] == reports["w2"]
    assert reports["w1a"]["rows"] > 200 and reports["w1a"]["skipped"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_streamed_output_same_as_written_after(mixed_job, tmp_path, suffix):
    """The CLI writes --output while the workers go on; the Python API writes it after the
    export: the same bytes, split files too."""
    from harbor_hooks import export_traces

    streamed, after = tmp_path / f"cli{suffix}", tmp_path / f"api{suffix}"
    run_cli("traces", "export", "-p", str(mixed_job), "-o", str(streamed), "--splits", check=True)
    export_traces(str(mixed_job), split_by="outcome", output=str(after))
    for split in ("success", "failure"):
        name = f"-{split}{suffix}"
        assert digest(tmp_path / f"cli{name}") == digest(tmp_path / f"api{name}")


def _third_task_fails(index, *args):
    if index == 2:
        raise OSError(28, "No space left on device")
    return export_task(index, *args)


def test_export_failing_midway_leaves_previous_file_and_no_work(mixed_job, tmp_path, monkeypatch):
    """A task failing after others were written: the output written so far is dropped, the
    previous file stays, and the export's work folder is removed."""
    from harbor_hooks.pipeline import local
    from harbor_hooks.publish import publish

    monkeypatch.setattr(local, "export_task", _third_task_fails)  # forked workers inherit it
    (tmp_path / "work").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "work"))  # where the shards go
    target = tmp_path / "out" / "rows.parquet"
    target.parent.mkdir()
    target.write_text("previous")
    added = []
    import harbor_hooks.outputs.files as out
    files = out.output_files

    def recording(*args, **kwargs):  # the first tasks' rows were written before the failure
        with files(*args, **kwargs) as add:
            yield lambda shards: (added.append(shards), add(shards))
    monkeypatch.setattr(out, "output_files", contextmanager(recording))
    from harbor_hooks.errors import ExportFailed
    with pytest.raises(ExportFailed, match="rows.parquet: No space left"):  # one line naming the file
        publish(str(mixed_job), ExportOptions(workers=2), OutputOptions(output=target, overwrite=True))
    assert len(added) == 2
    assert target.read_text() == "previous"
    assert leftovers(target.parent, target.name) == []
    assert os.listdir(tmp_path / "work") == []
