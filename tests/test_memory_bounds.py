"""Memory per trial does not grow with its steps or episodes: the README's bound, measured."""

from __future__ import annotations

import json

from conftest import make_trial, read_jsonl, trial_result
from test_hostile import run_measured

LIMIT_MB = 500


def test_20mb_of_null_steps(tmp_path):
    """A trajectory of 4 million `null` steps (20 MB, within --max-file-bytes): each bad step
    is counted, a few listed, and the trial's other steps exported."""
    trial = make_trial(tmp_path / "job", "t__1")
    with open(trial / "agent" / "trajectory.json", "w") as fh:
        fh.write('{"schema_version": "ATIF-v1.7", "steps": [{"step_id": 1, "source": "user", "message": "task"}, '
                 '{"step_id": 2, "source": "agent", "message": "done"}')
        fh.write(", null" * 4_000_000)
        fh.write("]}")
    out, report = tmp_path / "o.jsonl", tmp_path / "r.json"
    proc, peak = run_measured("traces", "export", "-p", str(tmp_path / "job"), "-o", str(out),
                              "--report", str(report), "--workers", "1", timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert peak < LIMIT_MB, peak
    assert len(read_jsonl(out)) == 1
    data = json.loads(report.read_text())
    assert len(data["skipped"]) == 3  # a few examples
    assert data["skipped_alike_not_listed"][0]["count"] == 4_000_000 - 3
    assert data["skipped_counts"] == {"step: step is a NoneType, expected an object": 4_000_000}
    assert "4000000 x step: step is a NoneType, expected an object" in proc.stdout


def test_1200_episodes_last_reads_only_the_last(tmp_path):
    """terminus-2 folders whose debug.json repeats the whole history (1,200 episodes, about
    150 MB): --episodes last reads the last complete one, in bounded memory."""
    trial = tmp_path / "job" / "t__1"
    (trial / "agent").mkdir(parents=True)
    (trial / "result.json").write_text(json.dumps(trial_result("t__1")))
    history: list[dict] = [{"role": "user", "content": "task " + "x" * 100}]
    for n in range(1200):
        folder = trial / "agent" / f"episode-{n}"
        folder.mkdir()
        (folder / "debug.json").write_text(json.dumps({"input": history}))
        (folder / "response.txt").write_text(f"reply {n} " + "y" * 100)
        history = history + [{"role": "assistant", "content": f"reply {n} " + "y" * 100},
                             {"role": "user", "content": f"screen {n} " + "z" * 100}]
    out = tmp_path / "o.jsonl"
    proc, peak = run_measured("traces", "export", "-p", str(tmp_path / "job"), "--episodes", "last",
                              "-o", str(out), "--workers", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert peak < LIMIT_MB, peak
    rows = read_jsonl(out)
    assert [r["episode"] for r in rows] == ["episode-1199"] and len(rows[0]["conversations"]) == 2400
