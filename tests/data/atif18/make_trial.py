"""Build an ATIF-v1.8 trial with Harbor 0.24's own models (run with Harbor's Python 3.12):

    python tests/data/atif18/make_trial.py OUT_TRIAL_DIR

A main agent calls two embedded subagents in parallel (a `researcher`, which itself calls a
nested `reader`, and a `coder`); a tool result holds text, audio and image parts. Harbor's
`Trajectory` validates the document (unique trajectory_ids, refs that resolve) before it is
written; the media files are written beside it in agent/.
"""

import json
import struct
import sys
import wave
import zlib
from pathlib import Path

from harbor.models.trajectories import (Agent, AudioSource, ContentPart, ImageSource, Observation,
                                        ObservationResult, Step, SubagentTrajectoryRef, ToolCall,
                                        Trajectory)

TOOLS = [{"type": "function", "function": {"name": "delegate", "description": "Run a subagent",
                                           "parameters": {"type": "object", "properties": {
                                               "task": {"type": "string"}}, "required": ["task"]}}}]


def sub(tid: str, name: str, ask: str, answer: str, nested: Trajectory | None = None) -> Trajectory:
    steps = [Step(step_id=1, source="user", message=ask)]
    if nested is None:
        steps.append(Step(step_id=2, source="agent", message=answer))
    else:
        steps.append(Step(step_id=2, source="agent", message="Reading first.",
                          tool_calls=[ToolCall(tool_call_id=f"{tid}-c1", function_name="delegate",
                                               arguments={"task": "read the file"})],
                          observation=Observation(results=[ObservationResult(
                              source_call_id=f"{tid}-c1", content="reader says: 3 lines",
                              subagent_trajectory_ref=[SubagentTrajectoryRef(trajectory_id=nested.trajectory_id)])])))
        steps.append(Step(step_id=3, source="agent", message=answer))
    return Trajectory(schema_version="ATIF-v1.8", session_id="run-1", trajectory_id=tid,
                      agent=Agent(name=name, version="1.0", model_name="sub-model"), steps=steps,
                      subagent_trajectories=[nested] if nested else None)


def main(out: Path) -> None:
    reader = sub("t-reader", "reader", "Read notes.txt", "It has 3 lines.")
    researcher = sub("t-researcher", "researcher", "Find the bug", "The bug is in add().", nested=reader)
    coder = sub("t-coder", "coder", "Fix add()", "Fixed: a + b.")
    main_steps = [
        Step(step_id=1, source="system", message="You orchestrate subagents."),
        Step(step_id=2, source="user", message="Fix the failing test."),
        Step(step_id=3, source="agent", message="Delegating research and the fix.",
             tool_calls=[ToolCall(tool_call_id="c1", function_name="delegate", arguments={"task": "Find the bug"}),
                         ToolCall(tool_call_id="c2", function_name="delegate", arguments={"task": "Fix add()"})],
             observation=Observation(results=[
                 ObservationResult(source_call_id="c2", content="coder: Fixed: a + b.",
                                   subagent_trajectory_ref=[SubagentTrajectoryRef(trajectory_id="t-coder")]),
                 ObservationResult(source_call_id="c1", content="researcher: The bug is in add().",
                                   subagent_trajectory_ref=[SubagentTrajectoryRef(trajectory_id="t-researcher")]),
             ])),
        Step(step_id=4, source="agent", message="Checking the recording.",
             tool_calls=[ToolCall(tool_call_id="c3", function_name="delegate", arguments={"task": "listen"})],
             observation=Observation(results=[ObservationResult(source_call_id="c3", content=[
                 ContentPart(type="text", text="Transcript and screenshot:"),
                 ContentPart(type="audio", source=AudioSource(media_type="audio/wav", path="media/note.wav")),
                 ContentPart(type="image", source=ImageSource(media_type="image/png", path="media/screen.png")),
             ])])),
        Step(step_id=5, source="agent", message="All done."),
    ]
    trajectory = Trajectory(schema_version="ATIF-v1.8", session_id="run-1", trajectory_id="t-main",
                            agent=Agent(name="orchestrator", version="1.0", model_name="main-model",
                                        tool_definitions=TOOLS),
                            steps=main_steps, subagent_trajectories=[researcher, coder])
    agent = out / "agent"
    (agent / "media").mkdir(parents=True, exist_ok=True)
    (agent / "trajectory.json").write_text(json.dumps(trajectory.to_json_dict(), indent=2))
    with wave.open(str(agent / "media" / "note.wav"), "wb") as audio:  # 0.1 s of silence
        audio.setnchannels(1), audio.setsampwidth(2), audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 800)
    (agent / "media" / "screen.png").write_bytes(png(2, 2))
    result = {"task_name": "orchestrate", "trial_name": out.name, "agent_info": {"name": "orchestrator",
              "model_info": {"name": "main-model", "provider": "local"}},
              "verifier_result": {"rewards": {"reward": 1.0}}, "started_at": "2026-11-27T10:00:00"}
    (out / "result.json").write_text(json.dumps(result, indent=2))


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
