"""Benchmark: --incremental re-exports and streaming job ends, against full exports, in one run.

    python bench/incremental.py [--trials 4000] [--added 40] [--runs 3]

Builds an ATIF job (bench/make_job.py). Everything is timed in one long-lived process, as
the hook service runs it (a separate CLI process adds its own start, ~0.35 s, to both):

- full: publish() of the grown job, no store (median of --runs, warm);
- incremental: the store of the job made, --added trials added, then publish(incremental)
  (median of --runs, each from a copy of the store as it was before the trials were added);
  its Parquet compared with the full export's, byte for byte;
- job end: the exporter plugin's on_job_complete after every trial was streamed through
  on_trial_complete (in a shuffled order: trials end in no particular order), against
  on_job_complete with streaming off (the full export).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_job import make_job  # noqa: E402

from harbor_hooks.hooks.exporter import ExporterPlugin  # noqa: E402
from harbor_hooks.options import ExportOptions, OutputOptions  # noqa: E402
from harbor_hooks.publish import publish  # noqa: E402
from harbor_hooks.readers.discover import finished_trials  # noqa: E402
from harbor_hooks.settings import load_settings  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def grow(job: Path, added: int) -> None:
    """Add trials spread through the job's name order (Harbor's names are random)."""
    names = finished_trials(job)
    for k in range(added):
        source = job / names[(k * len(names)) // added]
        shutil.copytree(source, job / (source.name + "x"))


def incremental(job: Path, work: Path, added: int, runs: int, episodes: str) -> dict[str, float]:
    opts = ExportOptions(episodes=episodes)
    out = work / "inc.parquet"
    store = work / "inc.parquet.incremental"
    publish(job, opts, OutputOptions(output=out, incremental=True))
    saved = work / "store-before"
    shutil.copytree(store, saved)
    grow(job, added)
    full = work / "full.parquet"
    publish(job, opts, OutputOptions(output=full))  # warm
    full_times = [timed(lambda: publish(job, opts, OutputOptions(output=full))) for _ in range(runs)]
    inc_times = []
    for _ in range(runs):
        shutil.rmtree(store)
        shutil.copytree(saved, store)
        inc_times.append(timed(lambda: publish(job, opts, OutputOptions(output=out, incremental=True))))
    assert out.read_bytes() == full.read_bytes(), "incremental Parquet differs from the full export's"
    return {"full": statistics.median(full_times), "incremental": statistics.median(inc_times)}


def job_end(job: Path, runs: int, episodes: str) -> dict[str, float]:
    plain = load_settings(None, defaults={"traces": True}, stream=False, episodes=episodes)
    streamed = load_settings(None, defaults={"traces": True}, episodes=episodes)
    store = job / "traces" / "traces.parquet.incremental"
    without = []
    for _ in range(runs):
        without.append(timed(lambda: ExporterPlugin().on_job_complete(job_dir=job, settings=plain)))
    full_bytes = (job / "traces" / "traces.parquet").read_bytes()
    with_stream, stream_total = [], []
    order = finished_trials(job)
    random.Random(0).shuffle(order)
    for _ in range(runs):
        shutil.rmtree(store, ignore_errors=True)
        plugin = ExporterPlugin()
        start = time.perf_counter()
        for name in order:  # trials end in no particular order
            plugin.on_trial_complete(trial_dir=job / name, settings=streamed)
        stream_total.append(time.perf_counter() - start)
        with_stream.append(timed(lambda: plugin.on_job_complete(job_dir=job, settings=streamed)))
        assert (job / "traces" / "traces.parquet").read_bytes() == full_bytes, "streamed output differs"
    return {"without": statistics.median(without), "with": statistics.median(with_stream),
            "streaming": statistics.median(stream_total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--added", type=int, default=None, help="default: 1%% of --trials")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--job-end-only", action="store_true", help="only the streaming job end")
    parser.add_argument("--episodes", choices=["all", "last"], default="all")
    args = parser.parse_args()
    added = args.added or max(1, args.trials // 100)
    with tempfile.TemporaryDirectory(prefix="harbor-hooks-bench-inc-") as tmp:
        work = Path(tmp)
        job = make_job(work / "job", args.trials, atif_only=True)
        if not args.job_end_only:
            inc = incremental(job, work, added, args.runs, args.episodes)
            shutil.rmtree(job)
            job = make_job(work / "job", args.trials, atif_only=True)
        end = job_end(job, args.runs, args.episodes)
    print(f"| case ({args.trials:,} trials, --episodes {args.episodes}, 2 cores, in one process) | time |")
    print("| --- | --- |")
    if not args.job_end_only:
        print(f"| full export | {inc['full']:.3f} s |")
        print(f"| incremental re-export after adding {added} trials | {inc['incremental']:.3f} s "
              f"({100 * inc['incremental'] / inc['full']:.0f}% of full; Parquet byte-identical) |")
    print(f"| job end, no streaming (on_job_complete) | {end['without']:.3f} s |")
    print(f"| job end after streaming every trial | {end['with']:.3f} s "
          f"({100 * end['with'] / end['without']:.0f}%; output byte-identical) |")
    print(f"| streaming, all on_trial_complete calls together | {end['streaming']:.2f} s "
          f"({1000 * end['streaming'] / args.trials:.2f} ms per trial) |")


if __name__ == "__main__":
    main()
