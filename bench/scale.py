"""Scale benchmarks: a 100,000-trial local export, and a two-node Ray cluster on 4,000 trials.

    python bench/scale.py [--trials 100000] [--work DIR] [--keep] [--ray-trials 4000]

Grows an ATIF job from the sample job (bench/make_job.py; 100,000 trials take ~6 GB and a
few minutes to copy), then measures `harbor-hooks traces export --episodes last` on it
with the local engine: wall time, and peak memory of the whole process tree (summed PSS,
sampled every 20 ms) in a second run. With --ray-trials, starts a two-node Ray cluster on
127.0.0.1 (`ray start --head`, `ray start --address`, one CPU each, as tests/test_ray_cluster.py)
and times the same export of a job of that size with --engine ray against the local engine.
Prints a Markdown table (the README's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import measure, mb  # noqa: E402
from make_job import make_job  # noqa: E402


def export(job: Path, out: Path, *flags: str, memory: bool = False, env: dict | None = None) -> tuple[float, int, int]:
    wall, peak, stdout = measure([sys.executable, "-m", "harbor_hooks", "traces", "export", "--path", str(job),
                                  "--output", str(out), "--overwrite", *flags], memory, env)
    return wall, peak, int(stdout.split("Exported ")[1].split()[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_node_cluster(env: dict) -> str:
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
                   env=env, check=True, capture_output=True)
    subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"second": 1}', *common],
                   env=env, check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--ray-trials", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="where the job is grown (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the grown job")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="harbor-hooks-scale-"))
    lines = ["| case | harbor-hooks |", "| --- | --- |"]
    try:
        job = work / f"job-{args.trials}"
        if not job.exists():
            started = time.perf_counter()
            make_job(job, args.trials, atif_only=True)
            print(f"grew {args.trials} trials in {time.perf_counter() - started:.0f} s", flush=True)
        export(job, work / "warm.parquet", "--episodes", "last")  # the job's files read once, untimed
        wall, _, rows = export(job, work / "x.parquet", "--episodes", "last")
        _, peak, _ = export(job, work / "x.parquet", "--episodes", "last", memory=True)
        lines.append(f"| {args.trials:,} trials, `--episodes last`, {rows:,} rows, local engine, 2 cores "
                     f"| {wall:.1f} s, peak {mb(peak)} (process tree) |")
        if args.ray_trials:
            small = work / f"job-{args.ray_trials}"
            if not small.exists():
                make_job(small, args.ray_trials, atif_only=True)
            env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
            address = two_node_cluster(env)
            try:
                local, _, rows = export(small, work / "l.parquet", "--episodes", "all", env=env)
                on_ray, _, ray_rows = export(small, work / "r.parquet", "--episodes", "all", "--engine", "ray",
                                             "--ray-address", address, env=env)
                assert rows == ray_rows
            finally:
                subprocess.run(["ray", "stop", "--force"], capture_output=True)
            lines.append(f"| {args.ray_trials:,} trials, `--episodes all`, {rows:,} rows: two-node Ray cluster "
                         f"(1 CPU each, one machine) vs local engine | {on_ray:.1f} s vs {local:.1f} s |")
        print("\n".join(lines))
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
