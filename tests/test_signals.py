"""Ctrl-C and SIGTERM during an export: it stops within 2 s with 130 / 143, leaves no temporary
file or work folder, and the previous output is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from make_job import make_job  # noqa: E402


@pytest.fixture(scope="module")
def big_job(tmp_path_factory) -> Path:
    # --episodes all over 6,000 trials, no text repeated across them (none is remembered):
    # several seconds of work on 2 cores
    return make_job(tmp_path_factory.mktemp("signals") / "job", 6000, atif_only=True, unique=True)


def default_signals() -> None:
    """As a shell starts a command: Ctrl-C and SIGTERM at their defaults (an earlier test in
    this pytest process, Ray's for one, may have left SIGINT ignored, which a child inherits)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.startswith("harbor-hooks-"))


@pytest.mark.parametrize("sig,code,group", [(signal.SIGINT, 130, True), (signal.SIGINT, 130, False),
                                            (signal.SIGTERM, 143, True), (signal.SIGTERM, 143, False)],
                         ids=["ctrl-c-group", "sigint-parent", "sigterm-group", "sigterm-parent"])
def test_signal_mid_export_stops_cleanly(big_job, tmp_path, sig, code, group):
    out_dir, work = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    work.mkdir()
    target = out_dir / "rows.parquet"
    target.write_bytes(b"the previous export")
    env = {**os.environ, "TMPDIR": str(work), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "harbor_hooks", "traces", "export", "-p", str(big_job),
                             "--episodes", "all", "--workers", "2", "-o", str(target), "--overwrite"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while not any(".tmp-" in p.name for p in out_dir.iterdir()):  # the output is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    assert proc.poll() is None, "the export ended before it could be interrupted"
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)  # as a terminal sends Ctrl-C: to every process of the group
    else:
        os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert proc.returncode == code, (stdout, stderr)
    assert stopped < 2.0, stopped
    assert "Traceback" not in stderr and "Exported" not in stdout, stderr
    assert target.read_bytes() == b"the previous export"
    assert leftovers(out_dir) == [] and os.listdir(work) == []
    time.sleep(0.5)  # no worker outlives the export
    assert subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout == b""
