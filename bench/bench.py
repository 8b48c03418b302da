"""Benchmark: harbor-hooks against Harbor 0.24.0's exporter, on the same job, in the same run.

    python bench/bench.py [--trials 4000] [--runs 3] [--quick] [--cold]

Builds an ATIF-only job from the sample job (bench/make_job.py), then for each case runs
Harbor's `export_traces(...).to_parquet(...)` (in its Python 3.12 venv, see
tests/harbor_env.py) and `harbor-hooks traces export --output x.parquet`, alternating,
`--runs` times each, each timed run warm (the job's files read and the tool's code
imported just before, untimed; `--cold` skips that); reports median wall time, peak
memory of the whole process tree (summed PSS of the command and every child, sampled
every 20 ms) and rows, with ratios. Then: the cost of redaction, the size saved by
--rows trajectory, and (without --quick) peak memory at 1,000 vs 10,000 trials.
Prints a Markdown table (the README's).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from make_job import make_job  # noqa: E402

HARBOR_SCRIPT = r"""
import sys
from harbor.utils.traces_utils import export_traces
ds = export_traces(sys.argv[1], episodes=sys.argv[2], verbose=False, use_rich_progress=False)
ds.to_parquet(sys.argv[3])
print(len(ds))
"""


def tree_pss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(argv: list[str], memory: bool = False,
            env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak summed PSS bytes or 0, stdout) of a command and its children.

    Sampling PSS reads /proc/*/smaps, which costs CPU: timed runs do not sample, and a
    separate run measures memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, tree_pss(ps))
            except psutil.NoSuchProcess:
                break
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    if memory:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}")
    return wall, peak, out


def ours(job: Path, out: Path, *flags: str, memory: bool = False) -> tuple[float, int, int]:
    wall, peak, stdout = measure([sys.executable, "-m", "harbor_hooks", "traces", "export", "--path",
                                  str(job), "--output", str(out), *flags], memory)
    rows = int(stdout.split("Exported ")[1].split()[0])
    return wall, peak, rows


# LiteLLM (imported by Harbor) fetches a model cost map from GitHub at import and, offline,
# retries with sleeps: timing those would flatter harbor-hooks, so Harbor uses its local copy
HARBOR_ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HARBOR_TELEMETRY": "0"}


def harbor(python: Path, job: Path, out: Path, episodes: str,
           memory: bool = False) -> tuple[float, int, int]:
    wall, peak, stdout = measure([str(python), "-c", HARBOR_SCRIPT, str(job), episodes, str(out)],
                                 memory, env=HARBOR_ENV)
    return wall, peak, int(stdout.strip().splitlines()[-1])


def conversation_bytes(path: Path) -> int:
    """Characters of all conversations in an export (what a trainer reads and tokenizes)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["conversations"], batch_size=500):
        contents = pc.struct_field(pc.list_flatten(batch.column(0)), "content")
        total += pc.sum(pc.utf8_length(contents)).as_py() or 0
    return total


def mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:.1f} MB"


OURS_CODE = "import harbor_hooks.cli, harbor_hooks.cli.commands, harbor_hooks.publish, harbor_hooks.outputs.files, harbor_hooks.pipeline.local"
HARBOR_CODE = "import harbor.utils.traces_utils, datasets"


def warm(job: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Untimed: read the job's files and import a tool's code, so both run warm. The
    machines here reclaim idle page cache within a minute: without this, whichever tool
    runs after the other's long run pays cold reads of its libraries and of the job."""
    for folder, _, names in os.walk(job):
        for name in names:
            with open(os.path.join(folder, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    subprocess.run(argv, env=env, capture_output=True, check=True)


def compare(python: Path | None, job: Path, work: Path, episodes: str, runs: int,
            cold: bool = False) -> dict:
    flags = ["--episodes", episodes]
    results = {"ours": [], "harbor": []}
    for _ in range(runs):  # alternating, so drift and cache state hit both alike
        if python is not None:
            if not cold:
                warm(job, [str(python), "-c", HARBOR_CODE], HARBOR_ENV)
            results["harbor"].append(harbor(python, job, work / "harbor.parquet", episodes))
        if not cold:
            warm(job, [sys.executable, "-c", OURS_CODE])
        results["ours"].append(ours(job, work / "ours.parquet", *flags))
    peaks = {"ours": ours(job, work / "ours.parquet", *flags, memory=True)[1]}
    if python is not None:
        peaks["harbor"] = harbor(python, job, work / "harbor.parquet", episodes, memory=True)[1]
    summary = {}
    for who, values in results.items():
        if values:
            summary[who] = (statistics.median(v[0] for v in values), peaks[who], values[0][2])
    return summary


def redaction_cost(job: Path, work: Path, runs: int, label: str) -> str:
    times: dict[str, list[float]] = {"plain": [], "redacted": []}
    for _ in range(runs):  # alternating, as above
        times["plain"].append(ours(job, work / "x.parquet", "--no-redact")[0])
        times["redacted"].append(ours(job, work / "x.parquet")[0])
    plain, redacted = (statistics.median(times[k]) for k in ("plain", "redacted"))
    return f"| {label} | | {plain:.2f} s vs {redacted:.2f} s | {100 * (redacted - plain) / plain:+.0f}% |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-trial memory case")
    parser.add_argument("--no-harbor", action="store_true", help="measure harbor-hooks alone")
    parser.add_argument("--cold", action="store_true",
                        help="do not warm the page cache before each timed run")
    args = parser.parse_args()

    python = None
    if not args.no_harbor:
        from harbor_env import harbor_python, harbor_unavailable_reason
        python = harbor_python()
        if python is None:
            print(f"Harbor unavailable ({harbor_unavailable_reason()}): measuring harbor-hooks alone")

    # a wheel install byte-compiles the package; an editable one under
    # PYTHONDONTWRITEBYTECODE=1 (as here) would compile it again in every run
    compileall.compile_dir(str(ROOT / "harbor_hooks"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="harbor-hooks-bench-"))
    try:
        job = make_job(work / f"job-{args.trials}", args.trials, atif_only=True)
        size = sum(f.stat().st_size for f in job.rglob("*") if f.is_file())
        print(f"job: {args.trials} ATIF trials, {mb(size)}; {os.cpu_count()} cores; "
              f"median of {args.runs} alternating runs, {'cold' if args.cold else 'warm'}\n")
        lines = ["| case | Harbor 0.24.0 | harbor-hooks | speed-up |", "| --- | --- | --- | --- |"]
        for episodes in ("all", "last"):
            s = compare(python, job, work, episodes, args.runs, args.cold)
            o = s["ours"]
            if "harbor" in s:
                h = s["harbor"]
                assert h[2] == o[2], f"row counts differ: Harbor {h[2]}, harbor-hooks {o[2]}"
                lines.append(f"| `--episodes {episodes}`, {o[2]} rows, to Parquet | {h[0]:.2f} s, "
                             f"{mb(h[1])} | {o[0]:.2f} s, {mb(o[1])} | {h[0] / o[0]:.1f}x |")
            else:
                lines.append(f"| `--episodes {episodes}`, {o[2]} rows | n/a | {o[0]:.2f} s, "
                             f"{mb(o[1])} | n/a |")
        lines.append(redaction_cost(job, work, args.runs, "redaction cost (`--no-redact` vs default)"))
        unique = make_job(work / "job-unique", args.trials, atif_only=True, unique=True)
        lines.append(redaction_cost(unique, work, args.runs, "the same, no text repeated across trials"))
        shutil.rmtree(unique)
        ours(job, work / "episode.parquet")
        ours(job, work / "trajectory.parquet", "--rows", "trajectory")
        # conversation text, not file bytes: this job repeats four trials, which Parquet's
        # dictionary encoding and zstd would hide
        ep, tr = (conversation_bytes(work / f"{name}.parquet") for name in ("episode", "trajectory"))
        lines.append(f"| `--rows trajectory` vs episode rows (conversation text) | | {mb(tr)} vs "
                     f"{mb(ep)} | {ep / tr:.1f}x smaller |")
        if not args.quick:
            peaks = {}
            for n in (1000, 10000):
                small = make_job(work / f"job-{n}", n, atif_only=True)
                peaks[n] = max(ours(small, work / "m.parquet", memory=True)[1] for _ in range(2))
                shutil.rmtree(small)
            change = 100 * (peaks[10000] - peaks[1000]) / peaks[1000]
            lines.append(f"| peak memory, 1,000 vs 10,000 trials | | {mb(peaks[1000])} vs "
                         f"{mb(peaks[10000])} | {change:+.0f}% |")
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
