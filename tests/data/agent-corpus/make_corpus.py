"""Build the agent corpus with Harbor 0.24's own converters (run with Harbor's Python 3.12):

    python tests/data/agent-corpus/make_corpus.py [OUT_JOB_DIR]     # default: job/ beside this file

Each installed agent of Harbor turns the session logs its CLI wrote into `agent/trajectory.json`
after a run (`populate_context_post_run`). Here the logs are hand-written but follow each
agent's format (logs/<agent>/<task>/, laid out as Harbor copies them into a trial's agent/
folder): a copy of them is handed to the agent's own code, and what it writes (the
trajectory, and images it extracts) becomes trial <task>__<agent>/agent/. result.json and
config.json are written in the shape Harbor gives them, with the token counts the converter
put in the AgentContext.

Nothing here is random: timestamps and ids come from the logs, LiteLLM prices from its
bundled cost map (LITELLM_LOCAL_MODEL_COST_MAP), mini-swe-agent's session id is set.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: no network, fixed prices
os.environ.setdefault("HARBOR_TELEMETRY", "0")

from harbor.models.agent.context import AgentContext  # noqa: E402

HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"
JOB_ID = "agent-corpus-1"
STARTED = "2025-11-02T10:00:00.000000"
FINISHED = "2025-11-02T10:00:30.000000"

# trial <task>__<logs>: (task, folder under logs/, agent class, model as Harbor passes it, provider,
# version, reward). result.json names the agent as Harbor does, by the class's name(): Qwen Code's
# is `qwen-coder` (AgentName.QWEN_CODE), while its trajectories say `qwen-code`.
TRIALS = [
    ("fix-median", "claude-code", "harbor.agents.installed.claude_code:ClaudeCode",
     "anthropic/claude-sonnet-4-5", "anthropic", "2.0.31", 1.0),
    ("fix-median", "codex", "harbor.agents.installed.codex:Codex",
     "openai/gpt-5-codex", "openai", "0.58.0", 1.0),
    ("fix-median", "gemini-cli", "harbor.agents.installed.gemini_cli:GeminiCli",
     "google/gemini-2.5-pro", "google", "0.40.1", 1.0),
    ("read-chart", "gemini-cli", "harbor.agents.installed.gemini_cli:GeminiCli",
     "google/gemini-2.5-pro", "google", "0.40.1", 1.0),
    ("fix-median", "mini-swe-agent", "harbor.agents.installed.mini_swe_agent:MiniSweAgent",
     "openai/gpt-5-mini", "openai", "2.0.0", 1.0),
    ("fix-median", "opencode", "harbor.agents.installed.opencode:OpenCode",
     "anthropic/claude-haiku-4-5", "anthropic", "1.0.20", 0.0),
    ("fix-median", "qwen-code", "harbor.agents.installed.qwen_code:QwenCode",
     "openai/qwen3-coder-plus", "openai", "0.2.1", 1.0),
]


def load_class(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def convert(cls, logs: Path, dest: Path, model: str, version: str, trial: str) -> AgentContext:
    """Run the agent's post-run conversion on a copy of its logs; keep what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        logs_dir = Path(tmp) / "agent"
        shutil.copytree(logs, logs_dir)
        agent = cls(logs_dir=logs_dir, model_name=model, version=version)
        agent.session_id = f"{trial}__agent"  # mini-swe-agent names its ATIF session by it
        context = AgentContext()
        agent.populate_context_post_run(context)
        written = logs_dir / "trajectory.json"
        if not written.is_file():
            raise SystemExit(f"{cls.__name__} wrote no trajectory.json from {logs}")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(written, dest / "trajectory.json")
        if (logs_dir / "images").is_dir():
            shutil.copytree(logs_dir / "images", dest / "images")
    return context


def main(job: Path) -> None:
    if job.exists():
        shutil.rmtree(job)
    job.mkdir(parents=True)
    for task, logs, class_path, model, provider, version, reward in TRIALS:
        trial = f"{task}__{logs}"
        cls = load_class(class_path)
        agent_name = cls.name()
        context = convert(cls, LOGS / logs / task, job / trial / "agent", model, version, trial)
        config = {"task": {"path": f"tasks/{task}"}, "trial_name": trial, "job_id": JOB_ID,
                  "agent": {"name": agent_name, "model_name": model}}
        result = {
            "task_name": task, "trial_name": trial, "config": config,
            "agent_info": {"name": agent_name, "version": version,
                           "model_info": {"name": model.split("/", 1)[1], "provider": provider}},
            "agent_result": {"n_input_tokens": context.n_input_tokens,
                             "n_cache_tokens": context.n_cache_tokens,
                             "n_output_tokens": context.n_output_tokens},
            "verifier_result": {"rewards": {"reward": reward}},
            "exception_info": None,
            "started_at": STARTED, "finished_at": FINISHED,
        }
        (job / trial / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (job / trial / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{trial}: {len(json.loads((job / trial / 'agent' / 'trajectory.json').read_text())['steps'])} steps")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "job")
