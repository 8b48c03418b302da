#!/bin/bash
# The oracle: does the work, then records what it did as an ATIF trajectory in
# /logs/agent/trajectory.json (the oracle agent writes none itself).
#
# HARBOR_TEST_FAIL_ONCE=<host file> (agent env, `--ae`): when that file does not exist
# yet, create it and hang, so the first attempt hits the agent timeout and is retried.
set -e
if [ -n "${HARBOR_TEST_FAIL_ONCE:-}" ] && [ ! -e "$HARBOR_TEST_FAIL_ONCE" ]; then
    echo "first attempt: hanging until the agent timeout" > "$HARBOR_TEST_FAIL_ONCE"
    sleep 60
fi

printf 'Hello, world!' > hello.txt
listing="$(ls)"

cat > /logs/agent/trajectory.json <<JSON
{
  "schema_version": "ATIF-v1.6",
  "session_id": "oracle-session-1",
  "agent": {"name": "oracle", "version": "1.0.0", "model_name": "oracle/solve-sh"},
  "steps": [
    {"step_id": 1, "source": "system", "message": "You are a careful shell agent."},
    {"step_id": 2, "source": "user",
     "message": "Create a file called hello.txt in the working directory with \"Hello, world!\" as the content."},
    {"step_id": 3, "source": "agent", "model_name": "oracle/solve-sh",
     "message": "I will write the file with printf.",
     "tool_calls": [{"tool_call_id": "call_1", "function_name": "bash",
                     "arguments": {"command": "printf 'Hello, world!' > hello.txt"}}],
     "observation": {"results": [{"source_call_id": "call_1", "content": ""}]},
     "metrics": {"prompt_tokens": 40, "completion_tokens": 12}},
    {"step_id": 4, "source": "agent", "model_name": "oracle/solve-sh",
     "message": "Checking the result.",
     "tool_calls": [{"tool_call_id": "call_2", "function_name": "bash",
                     "arguments": {"command": "ls"}}],
     "observation": {"results": [{"source_call_id": "call_2", "content": "${listing}"}]},
     "metrics": {"prompt_tokens": 70, "completion_tokens": 8}},
    {"step_id": 5, "source": "agent", "model_name": "oracle/solve-sh",
     "message": "hello.txt now contains Hello, world!. Done."}
  ],
  "final_metrics": {"total_prompt_tokens": 110, "total_completion_tokens": 20, "total_steps": 5}
}
JSON
echo "wrote hello.txt and /logs/agent/trajectory.json"
