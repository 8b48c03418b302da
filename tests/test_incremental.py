"""--incremental and streaming: a re-export reads only what changed, and its output is the
full export's, byte for byte, with the same report."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from conftest import ROOT, run_cli
from harbor_hooks.errors import UsageError
from harbor_hooks.hooks.exporter import ExporterPlugin
from harbor_hooks.options import ExportOptions, OutputOptions
from harbor_hooks.publish import publish
from harbor_hooks.readers.discover import finished_trials
from harbor_hooks.settings import load_settings

sys.path.insert(0, str(ROOT / "bench"))
from make_job import make_job  # noqa: E402


@pytest.fixture(scope="module")
def base_job(tmp_path_factory) -> Path:
    return make_job(tmp_path_factory.mktemp("incremental") / "job", 150)


@pytest.fixture
def job(base_job, tmp_path) -> Path:
    return Path(shutil.copytree(base_job, tmp_path / "job"))


def export(job: Path, out: Path, incremental: bool, **options):
    return publish(job, ExportOptions(**options),
                   OutputOptions(output=out, report=out.with_suffix(".report.json"), incremental=incremental))


def assert_same_as_full(job: Path, out: Path, outcome, tmp: Path, **options) -> None:
    """The incremental output equals a full export of the same tree, bytes and report."""
    full = tmp / f"full-{time.monotonic_ns()}{out.suffix}"
    export(job, full, False, **options)
    assert out.read_bytes() == full.read_bytes()
    assert json.loads(out.with_suffix(".report.json").read_text()) == \
        json.loads(full.with_suffix(".report.json").read_text())


def trial(job: Path, i: int) -> Path:
    return job / finished_trials(job)[i]


def add_trial(job: Path, name: str) -> None:
    shutil.copytree(trial(job, 3), job / name)
    result = json.loads((job / name / "result.json").read_text())
    result["trial_name"] = name
    (job / name / "result.json").write_text(json.dumps(result))


def counts(outcome) -> tuple[int, int]:
    line = next(m for m in outcome.messages if m.startswith("--incremental"))
    read, reused = (int(line.split(" read, ")[0].split()[-2]), int(line.split(" reused")[0].split()[-1]))
    return read, reused


def test_a_re_export_reads_only_new_trials_and_gives_the_full_export_bytes(job, tmp_path):
    out = tmp_path / "out.parquet"
    first = export(job, out, True)
    assert counts(first) == (150, 0) and "no manifest yet" in first.messages[0]
    assert_same_as_full(job, out, first, tmp_path)
    for name in ("hello-world__a0000001", "hello-world__b0000050x", "hello-world__z9"):
        add_trial(job, name)  # before, between and after the others
    again = export(job, out, True)
    assert counts(again) == (3, 150)
    assert again.report.trials_found == 153
    assert_same_as_full(job, out, again, tmp_path)
    unchanged = export(job, out, True)
    assert counts(unchanged) == (0, 153)
    assert_same_as_full(job, out, unchanged, tmp_path)


def test_changed_and_vanished_trials(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    trajectory = next(job.glob("*/agent/trajectory.json"))
    text = trajectory.read_text()
    trajectory.write_text(text.replace("hello", "HELLO", 1))  # same size, new contents and mtime
    os.utime(trajectory, ns=(time.time_ns(), time.time_ns() + 10**9))
    shutil.rmtree(trial(job, 7))
    (trial(job, 9) / "verifier" / "extra.txt").write_text("a file added")
    outcome = export(job, out, True)
    assert counts(outcome) == (2, 147)
    assert "1 gone from the job" in outcome.messages[0]
    assert_same_as_full(job, out, outcome, tmp_path)


def test_a_changed_job_result_re_reads_its_trial(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    results = json.loads((job / "result.json").read_text())
    regrade(job, next(iter(results["stats"]["evals"].values()))["reward_stats"]["reward"]["1.0"][0], "0.0")
    outcome = export(job, out, True)
    assert counts(outcome) == (1, 149)
    assert_same_as_full(job, out, outcome, tmp_path)


@pytest.mark.parametrize("options", [
    {"schema": "messages", "splits": True},
    {"dedupe": True},
    {"max_per_task": 2, "val_fraction": 0.3, "episodes": "last"},
    {"schema": "llamafactory", "rows": "trajectory", "workers": 1},
])
def test_options_and_whole_job_steps(job, tmp_path, options):
    out = tmp_path / "out.parquet"
    export(job, out, True, **options)
    add_trial(job, "hello-world__c1")
    shutil.rmtree(trial(job, 2))
    outcome = export(job, out, True, **options)
    assert counts(outcome) == (1, 149)
    splits = ["success", "failure"] if options.get("splits") else []
    for split in splits:
        part = out.with_name(f"out-{split}.parquet")
        full = tmp_path / "f.parquet"
        export(job, full, False, **options)
        assert part.read_bytes() == full.with_name(f"f-{split}.parquet").read_bytes()
    if not splits and "val_fraction" not in options:
        assert_same_as_full(job, out, outcome, tmp_path, **options)


def test_jsonl_output(job, tmp_path):
    out = tmp_path / "out.jsonl"
    export(job, out, True, schema="messages")
    add_trial(job, "hello-world__c1")
    outcome = export(job, out, True, schema="messages")
    assert counts(outcome) == (1, 150)
    assert_same_as_full(job, out, outcome, tmp_path, schema="messages")


def test_other_options_mean_a_full_export_with_one_reason(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    outcome = export(job, out, True, schema="messages")
    assert counts(outcome) == (150, 0)
    assert "the option schema differs ('harbor' then, 'messages' now)" in outcome.messages[0]
    assert_same_as_full(job, out, outcome, tmp_path, schema="messages")
    manifest = out.with_name("out.parquet.incremental") / "manifest.json"
    data = orjson.loads(manifest.read_bytes())
    data["fingerprint"]["harbor_hooks"] = "0.0.1"
    manifest.write_bytes(orjson.dumps(data))
    outcome = export(job, out, True, schema="messages")
    assert counts(outcome) == (150, 0) and "written by harbor-hooks 0.0.1" in outcome.messages[0]
    manifest.write_text("{not json")
    outcome = export(job, out, True, schema="messages")
    assert counts(outcome) == (150, 0) and "cannot be read" in outcome.messages[0]
    assert_same_as_full(job, out, outcome, tmp_path, schema="messages")


def test_a_lost_or_cut_shard_re_reads_its_trials(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    shards = sorted((out.with_name("out.parquet.incremental") / "shards").iterdir())
    shards[0].unlink()
    with open(shards[1], "r+b") as fh:
        fh.truncate(100)
    outcome = export(job, out, True)
    assert counts(outcome) == (128, 22)  # the 64 trials of each of the two shards, read again
    assert_same_as_full(job, out, outcome, tmp_path)


def test_the_store_is_never_a_users_folder(job, tmp_path):
    out = tmp_path / "out.parquet"
    store = tmp_path / "out.parquet.incremental"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds files that are not a store's"):
        export(job, out, True)
    assert (store / "notes.txt").read_text() == "mine" and not out.exists()
    result = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--incremental")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds files that are not a store's" in result.stderr
    result = run_cli("traces", "export", "-p", str(job), "--incremental", "--push", "--repo", "o/n")
    assert result.returncode == 2 and "give a local --output" in result.stderr
    result = run_cli("traces", "export", "-p", str(job), "--incremental", "-o", "s3://bucket/x.parquet",
                     cwd=str(tmp_path))
    assert result.returncode == 2 and "give a local --output" in result.stderr
    assert not (tmp_path / "s3:").exists()


def test_a_url_output_is_a_url_not_a_local_folder(tmp_path):
    """--output s3://b/dir/ once became a local folder ./s3:/b/dir (a Path drops a slash)."""
    target = tmp_path / "remote" / "ds"
    run_cli("traces", "export", "--sample", "-o", f"file://{target}/", cwd=str(tmp_path), check=True)
    assert (target / "dataset_info.json").is_file() and not (tmp_path / "file:").exists()


def test_cli_says_what_it_reused(job, tmp_path):
    out = tmp_path / "out.parquet"
    run_cli("traces", "export", "-p", str(job), "-o", str(out), "--incremental", check=True)
    add_trial(job, "hello-world__c1")
    result = run_cli("traces", "export", "-p", str(job), "-o", str(out), "--incremental", check=True)
    assert "--incremental: 1 trial read, 150 reused" in result.stdout + result.stderr


def test_the_store_holds_no_secret_the_output_does_not(job, tmp_path):
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    first = next(p.parent.parent for p in sorted(job.glob("*/agent/trajectory.json")))
    trajectory = first / "agent" / "trajectory.json"
    data = json.loads(trajectory.read_text())
    data["steps"][0]["message"] = f"use {secret} please"
    trajectory.write_text(json.dumps(data))
    (first / "verifier").mkdir(exist_ok=True)
    (first / "verifier" / f"bad{secret}.json").write_text("{")
    out = tmp_path / "out.parquet"
    export(job, out, True)
    for path in out.with_name("out.parquet.incremental").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def stream_job(job: Path, settings, plugin: ExporterPlugin | None = None) -> ExporterPlugin:
    plugin = plugin or ExporterPlugin()
    for name in finished_trials(job):
        plugin.on_trial_complete(trial_dir=job / name, settings=settings)
    return plugin


def test_streaming_leaves_only_the_assembly_and_gives_the_full_export(job, tmp_path):
    settings = load_settings(None, defaults={"traces": True})
    plugin = stream_job(job, settings)
    store = job / "traces" / "traces.parquet.incremental"
    assert (store / "journal.jsonl").exists()
    plugin.on_job_complete(job_dir=job, settings=settings)
    out = job / "traces" / "traces.parquet"
    full = tmp_path / "full.parquet"
    export(job, full, False)
    assert out.read_bytes() == full.read_bytes()
    assert not (store / "journal.jsonl").exists() and (store / "manifest.json").exists()


def test_a_trial_changed_after_its_event_is_read_again(job, tmp_path):
    settings = load_settings(None, defaults={"traces": True}, output=str(tmp_path / "o.parquet"))
    plugin = stream_job(job, settings)
    trajectory = next(p for p in sorted(job.glob("*/agent/trajectory.json")))
    trajectory.write_text(trajectory.read_text().replace("hello", "bye"))
    add_trial(job, "hello-world__c1")  # ended with no event (a missed one)
    plugin.on_job_complete(job_dir=job, settings=settings)
    full = tmp_path / "full.parquet"
    export(job, full, False)
    assert (tmp_path / "o.parquet").read_bytes() == full.read_bytes()
    manifest = orjson.loads((tmp_path / "o.parquet.incremental" / "manifest.json").read_bytes())
    assert len(manifest["trials"]) == 151


def test_a_stream_cut_short_still_gives_every_row(job, tmp_path):
    """A job whose process died mid-stream: the next job-end export (a new process) reads
    the journal, skips the segment left unclosed, and reads those trials again."""
    settings = load_settings(None, defaults={"traces": True}, stream=True)
    plugin = ExporterPlugin()
    names = finished_trials(job)
    threads = [threading.Thread(target=plugin.on_trial_complete, kwargs={"trial_dir": job / n, "settings": settings})
               for n in names[:80]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ExporterPlugin().on_job_complete(job_dir=job, settings=settings)  # the first one never closed
    full = tmp_path / "full.parquet"
    export(job, full, False)
    assert (job / "traces" / "traces.parquet").read_bytes() == full.read_bytes()


def test_streaming_settings_not_those_of_the_job_end_are_not_used(job, tmp_path):
    stream_job(job, load_settings(None, defaults={"traces": True}, schema="messages")).on_job_complete(
        job_dir=job, settings=load_settings(None, defaults={"traces": True}))
    full = tmp_path / "full.parquet"
    export(job, full, False)
    assert (job / "traces" / "traces.parquet").read_bytes() == full.read_bytes()


# What an outside attack found (each once a wrong row, report or a lost file)

def regrade(job: Path, trial: str, bucket: str) -> None:
    results = json.loads((job / "result.json").read_text())
    rewards = next(iter(results["stats"]["evals"].values()))["reward_stats"]["reward"]
    for names in rewards.values():
        if trial in names:
            names.remove(trial)
    rewards.setdefault(bucket, []).append(trial)
    (job / "result.json").write_text(json.dumps(results))


def test_a_filtered_trial_regraded_by_the_job_is_read_again(job, tmp_path):
    out = tmp_path / "out.parquet"
    stats = next(iter(json.loads((job / "result.json").read_text())["stats"]["evals"].values()))
    excepted = {n for names in stats.get("exception_stats", {}).values() for n in names}
    failing = next(n for n in finished_trials(job) if n not in excepted)
    regrade(job, failing, "0.0")  # filtered out by --filter success, then made a success
    export(job, out, True, filter="success")
    regrade(job, failing, "1.0")
    outcome = export(job, out, True, filter="success")
    assert counts(outcome) == (1, 149)
    assert_same_as_full(job, out, outcome, tmp_path, filter="success")


def test_an_empty_folder_added_to_a_trial_is_a_change(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    (next(job.glob("*/agent/episode-0")).parent / "episode-99").mkdir()
    outcome = export(job, out, True)
    assert counts(outcome) == (1, 149)
    assert_same_as_full(job, out, outcome, tmp_path)


def test_a_folder_that_merely_looks_like_a_store_is_not_taken(job, tmp_path):
    out = tmp_path / "out.parquet"
    store = tmp_path / "out.parquet.incremental"
    (store / "shards").mkdir(parents=True)
    (store / "manifest.json").write_text('{"mine": true}')
    (store / "shards" / "photo.jpg").write_text("mine")
    with pytest.raises(UsageError, match="not a store's"):
        export(job, out, True)
    assert (store / "shards" / "photo.jpg").exists() and (store / "manifest.json").read_text() == '{"mine": true}'
    shutil.rmtree(store)
    export(job, out, True)  # a store of ours now; its shards folder made a link elsewhere
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "mine.arrow").write_text("mine")
    shutil.rmtree(store / "shards")
    (store / "shards").symlink_to(victim)
    with pytest.raises(UsageError, match="not links"):
        export(job, out, True)
    assert (victim / "mine.arrow").exists()


def test_a_shard_rewritten_at_the_same_size_is_not_trusted(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    shard = sorted((out.with_name("out.parquet.incremental") / "shards").iterdir())[0]
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    outcome = export(job, out, True)
    assert "64 read again as their stored rows were lost or changed" in outcome.messages[0]
    assert_same_as_full(job, out, outcome, tmp_path)


def test_a_trial_name_that_is_not_utf8(job, tmp_path):
    os.rename(trial(job, 5), os.path.join(os.fsencode(job), b"hello-world__\xff\xfe"))
    out = tmp_path / "out.parquet"
    export(job, out, True)
    outcome = export(job, out, True)
    assert counts(outcome) == (1, 149)  # renamed: its folder is not its trial_name, read each time
    assert_same_as_full(job, out, outcome, tmp_path)


def test_a_root_spelled_otherwise_is_another_export(job, tmp_path, monkeypatch):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    monkeypatch.chdir(job.parent)
    outcome = export(Path(job.name), out, True)
    assert counts(outcome) == (150, 0) and "it exported other folders" in outcome.messages[0]


def test_a_manifest_naming_an_option_this_version_lacks(job, tmp_path):
    out = tmp_path / "out.parquet"
    export(job, out, True)
    manifest = out.with_name("out.parquet.incremental") / "manifest.json"
    data = orjson.loads(manifest.read_bytes())
    data["fingerprint"]["options"]["from_the_future"] = 1
    manifest.write_bytes(orjson.dumps(data))
    outcome = export(job, out, True)
    assert "the option from_the_future differs (1 then, None now)" in outcome.messages[0]


def test_a_trial_whose_folder_is_not_its_name_is_read_each_time(job, tmp_path):
    """The job's result.json names it by its trial_name: the store cannot know it again."""
    out = tmp_path / "out.parquet"
    os.rename(trial(job, 4), job / "renamed-folder")
    export(job, out, True)
    outcome = export(job, out, True)
    assert counts(outcome) == (1, 149)
    assert_same_as_full(job, out, outcome, tmp_path)


def test_the_store_holds_no_secret_of_a_folder_name(base_job, tmp_path):
    secret = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    job = Path(shutil.copytree(base_job, tmp_path / f"job-{secret}"))
    settings = load_settings(None, defaults={"traces": True}, output=str(tmp_path / "o.parquet"))
    plugin = stream_job(job, settings)
    store = tmp_path / "o.parquet.incremental"
    assert secret.encode() not in (store / "journal.jsonl").read_bytes()
    plugin.on_job_complete(job_dir=job, settings=settings)
    export(job, tmp_path / "cli.parquet", True)
    for path in [*store.rglob("*"), *(tmp_path / "cli.parquet.incremental").rglob("*")]:
        assert path.is_dir() or secret.encode() not in path.read_bytes(), path


def test_what_the_jobs_result_json_reports_is_redacted_when_every_trial_is_reused(base_job, tmp_path):
    secret = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
    job = Path(shutil.copytree(base_job, tmp_path / f"job-{secret}"))
    raw = (job / "result.json").read_bytes()
    (job / "result.json").write_bytes(raw.replace(b'"stats"', b'"note\xff": 1, "stats"', 1))  # a note
    out = tmp_path / "out.parquet"
    export(job, out, True)
    outcome = export(job, out, True)
    assert counts(outcome) == (0, 150)
    report = out.with_suffix(".report.json").read_text()
    assert "invalid UTF-8" in report and secret not in report
    assert_same_as_full(job, out, outcome, tmp_path)


def test_a_killed_runs_journal_serves_run_job_dir(job, tmp_path):
    """The job's process died mid-stream; `run --job-dir` exports it and uses what streamed."""
    settings = load_settings(None, defaults={"traces": True})
    plugin = ExporterPlugin()
    for name in finished_trials(job)[:100]:
        plugin.on_trial_complete(trial_dir=job / name, settings=settings)
    plugin._streams[str(job)].close()  # its segment closed, as every 1,000 trials; then killed
    result = run_cli("run", "--job-dir", str(job), "--export-traces")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--incremental: 50 trials read, 100 reused" in result.stderr
    full = tmp_path / "full.parquet"
    export(job, full, False)
    assert (job / "traces" / "traces.parquet").read_bytes() == full.read_bytes()
