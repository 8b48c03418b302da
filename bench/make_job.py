"""Grow a Harbor job from the bundled sample job, for benchmarks and scale tests.

    python bench/make_job.py OUT --trials 4000 [--atif-only] [--steps S]

Trials are copies of the sample job's trials (both formats, or only the ATIF
ones), renamed `<task>__b<N>`, with the job-level result.json listing each
under its original reward or exception. With --steps S, ATIF trials are
instead synthesized: S agent steps with tool calls, observations and metrics. With
--unique-texts, every message and observation of a copied ATIF trial ends with the
trial's name, so that no text repeats across trials (a worst case for anything that
remembers texts, such as redaction's remembered openings).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "harbor_hooks" / "samples" / "sample-job"


def sample_outcomes() -> dict[str, str]:
    stats = json.loads((SAMPLE / "result.json").read_text())["stats"]["evals"]
    outcome = {}
    for ev in stats.values():
        for reward, names in ev["reward_stats"]["reward"].items():
            outcome.update({n: reward for n in names})
        for exc, names in ev.get("exception_stats", {}).items():
            outcome.update({n: exc for n in names})
    return outcome


def synthetic_trajectory(steps: int, seed: int) -> dict:
    tools = [{"type": "function", "function": {"name": "bash", "description": "Run a command",
              "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                             "required": ["cmd"]}}}]
    out = [{"step_id": 1, "source": "system", "message": "You are a careful engineer."},
           {"step_id": 2, "source": "user", "message": f"Task {seed}: make the tests pass."}]
    for i in range(steps):
        call_id = f"call_{seed}_{i}"
        out.append({
            "step_id": len(out) + 1, "source": "agent", "message": f"Step {i}: inspecting.",
            "reasoning_content": f"I should look at file {i}.",
            "tool_calls": [{"tool_call_id": call_id, "function_name": "bash",
                            "arguments": {"cmd": f"cat src/file_{i}.py"}}],
            "observation": {"results": [{"source_call_id": call_id,
                                         "content": f"def f_{i}():\n    return {i}\n" * 20}]},
            "metrics": {"prompt_tokens": 500 + 40 * i, "completion_tokens": 60},
        })
    return {"schema_version": "ATIF-v1.7", "session_id": f"s{seed}",
            "agent": {"name": "terminus-2", "version": "2.0.0", "model_name": "openai/gpt-4o",
                      "tool_definitions": tools}, "steps": out}


def unique_texts(trajectory: Path, name: str) -> None:
    """Make every text of an ATIF trajectory its own: the trial's name appended to it."""
    data = json.loads(trajectory.read_text())

    def mark(content):
        if isinstance(content, str):
            return f"{content}\n[{name}]"
        if isinstance(content, list):
            return [dict(part, text=mark(part["text"])) if isinstance(part, dict) and isinstance(part.get("text"), str)
                    else part for part in content]
        return content

    for step in data.get("steps", []):
        step["message"] = mark(step.get("message"))
        for result in (step.get("observation") or {}).get("results", []):
            result["content"] = mark(result.get("content"))
    trajectory.write_text(json.dumps(data))


def make_job(out: Path, trials: int, atif_only: bool = False, steps: int | None = None,
             unique: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    outcomes = sample_outcomes()
    templates = sorted(p for p in SAMPLE.iterdir() if p.is_dir()
                       if not atif_only or (p / "agent" / "trajectory.json").exists())
    rewards: dict[str, list[str]] = {}
    exceptions: dict[str, list[str]] = {}
    for i in range(trials):
        template = templates[i % len(templates)]
        task = template.name.split("__")[0]
        name = f"{task}__b{i:07d}"
        dest = out / name
        if steps is None:
            shutil.copytree(template, dest)
            if unique and (dest / "agent" / "trajectory.json").exists():
                unique_texts(dest / "agent" / "trajectory.json", name)
        else:
            shutil.copytree(template, dest, ignore=shutil.ignore_patterns("agent"))
            (dest / "agent").mkdir()
            (dest / "agent" / "trajectory.json").write_text(json.dumps(synthetic_trajectory(steps, i)))
        result = json.loads((dest / "result.json").read_text())
        result["trial_name"] = name
        if isinstance(result.get("config"), dict):
            result["config"]["trial_name"] = name
        (dest / "result.json").write_text(json.dumps(result, indent=2))
        outcome = outcomes[template.name]
        (exceptions if outcome[0].isalpha() else rewards).setdefault(outcome, []).append(name)
    job = json.loads((SAMPLE / "result.json").read_text())
    ev = next(iter(job["stats"]["evals"].values()))
    ev["reward_stats"]["reward"] = rewards
    ev["exception_stats"] = exceptions
    job["n_total_trials"] = job["stats"]["n_trials"] = trials
    (out / "result.json").write_text(json.dumps(job, indent=2))
    shutil.copy(SAMPLE / "config.json", out / "config.json")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--atif-only", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--unique-texts", action="store_true")
    args = parser.parse_args()
    make_job(args.out, args.trials, args.atif_only, args.steps, args.unique_texts)
    print(args.out)


if __name__ == "__main__":
    main()
