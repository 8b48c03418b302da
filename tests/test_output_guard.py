"""Never delete or overwrite what harbor-hooks did not write (issue 16, data loss 1)."""

from __future__ import annotations

import shutil

import pytest

from conftest import SAMPLE_JOB, run_cli


@pytest.fixture
def job(tmp_path):
    dest = tmp_path / "jobs" / "job"
    shutil.copytree(SAMPLE_JOB, dest)
    return dest


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_folder_we_did_not_write_is_refused_and_intact(job, tmp_path):
    shared = tmp_path / "exports"
    shared.mkdir()
    (shared / "colleague.parquet").write_bytes(b"someone else's work")
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(shared))
    assert proc.returncode == 2 and "holds no harbor-hooks export; pass --overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr and files_under(shared) == ["colleague.parquet"]
    run_cli("traces", "export", "-p", str(job), "-o", str(shared), "--overwrite", check=True)
    assert (shared / ".harbor-hooks-export").is_file() and not (shared / "colleague.parquet").exists()


def test_our_own_folder_is_replaced_without_asking(job, tmp_path):
    out = tmp_path / "out"
    run_cli("traces", "export", "-p", str(job), "-o", str(out), check=True)
    run_cli("traces", "export", "-p", str(job), "-o", str(out), "--episodes", "last", check=True)
    assert '"rows": 9' in (out / ".harbor-hooks-export").read_text()  # the second export's


@pytest.mark.parametrize("target", ["job", "jobs", "job/inside.parquet", "job/fix-git__Ep1s0dA"],
                         ids=["the-job", "its-parent", "a-file-inside", "a-trial"])
def test_never_inside_or_over_the_trials(job, tmp_path, target):
    before = files_under(tmp_path / "jobs")
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(tmp_path / "jobs" / target)
                   if target != "jobs" else str(tmp_path / "jobs"), "--overwrite")
    assert proc.returncode == 2 and "the trials it exports" in proc.stderr, proc.stderr
    assert files_under(tmp_path / "jobs") == before


def test_report_output_and_type_refused(job, tmp_path):
    same = tmp_path / "o.json"
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(same), "--report", str(same))
    assert proc.returncode == 2 and "the report would overwrite the output" in proc.stderr and not same.exists()
    proc = run_cli("traces", "export", "-p", str(job), "-o", str(tmp_path / "rows.csv"))
    assert proc.returncode == 2 and "unknown output type '.csv'" in proc.stderr
    assert not (tmp_path / "rows.csv").exists()
    proc = run_cli("traces", "export", "-p", str(tmp_path / "missing"), "-o", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr


@pytest.mark.parametrize("name,flags", [("notes.jsonl", []), ("out-success.parquet", ["--splits"]),
                                        ("keep.json", ["--report"])],
                         ids=["a-file", "a-split-file", "a-report"])
def test_a_file_we_did_not_write_is_refused_and_intact(job, tmp_path, name, flags):
    theirs = tmp_path / name
    theirs.write_bytes(b"someone else's work\n")
    target = tmp_path / ("out.parquet" if "--splits" in flags else name)
    args = ["-o", str(target), *flags] if "--report" not in flags else ["-o", str(tmp_path / "o.jsonl"), "--report", str(theirs)]
    proc = run_cli("traces", "export", "-p", str(job), *args)
    assert proc.returncode == 2 and "holds no harbor-hooks export; pass --overwrite" in proc.stderr, proc.stderr
    assert theirs.read_bytes() == b"someone else's work\n"
    run_cli("traces", "export", "-p", str(job), *args, "--overwrite", check=True)
    run_cli("traces", "export", "-p", str(job), *args, check=True)  # ours now: replaced without asking
