"""--format otel: one OpenTelemetry trace per trial, spans for steps and tool calls, written
as OTLP/JSON lines, as protobuf files, or sent to an OTLP/HTTP receiver on 127.0.0.1;
decoded here with opentelemetry-proto (the [otel] extra)."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import run_cli

pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
from google.protobuf.json_format import ParseDict  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

TOOL_JOB = Path(__file__).parent / "data" / "tool-job"
ATIF18 = Path(__file__).parent / "data" / "atif18-job"


def from_json_line(line: str) -> ExportTraceServiceRequest:
    def unhex(value):
        if isinstance(value, dict):
            return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId")
                    else unhex(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unhex(v) for v in value]
        return value
    return ParseDict(unhex(json.loads(line)), ExportTraceServiceRequest())


def spans_of(request: ExportTraceServiceRequest) -> list:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def attributes(span) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def check_trace(request: ExportTraceServiceRequest) -> dict:
    spans = spans_of(request)
    assert len({s.trace_id for s in spans}) == 1  # one trace per trial
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 1 and roots[0].name.startswith("trial ")
    for span in spans:
        if span.parent_span_id:
            parent = by_id[span.parent_span_id]
            assert parent.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
            assert span.end_time_unix_nano <= parent.end_time_unix_nano
    return {"root": roots[0], "spans": spans, "by_id": by_id}


def test_json_lines_one_trace_per_trial_with_step_and_tool_spans(tmp_path):
    out = tmp_path / "traces.jsonl"
    proc = run_cli("traces", "export", "-p", str(TOOL_JOB), "--format", "otel", "-o", str(out), check=True)
    assert "Exported 1 traces" in proc.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] == 1  # enums as integers
    trace = check_trace(from_json_line(lines[0]))
    steps = [s for s in trace["spans"] if " step " in s.name]
    tools = [s for s in trace["spans"] if s.name.startswith("execute_tool ")]
    assert len(steps) >= 6 and len(tools) == 5  # five tool calls in the tool job
    first = next(s for s in tools if attributes(s)["gen_ai.tool.call.id"] == "toolu_01")
    assert trace["by_id"][first.parent_span_id].name.startswith("assistant step")
    assert json.loads(attributes(first)["gen_ai.tool.call.arguments"]) == {"cmd": "cat tests/test_math.py"}
    assert "def test_add" in attributes(first)["gen_ai.tool.call.result"]
    assert attributes(trace["root"])["harbor.task"] == "swe-task"


def test_protobuf_folder_and_subagents(tmp_path):
    out = tmp_path / "pb"
    run_cli("traces", "export", "-p", str(ATIF18), "--format", "otel", "--encoding", "pb", "-o", str(out), check=True)
    files = sorted(out.glob("*.pb"))
    assert [f.name for f in files] == ["orchestrate__T1.pb"]
    trace = check_trace(ExportTraceServiceRequest.FromString(files[0].read_bytes()))
    subagents = {s.name for s in trace["spans"] if s.name.startswith("subagent ")}
    assert subagents == {"subagent researcher", "subagent reader", "subagent coder"}
    bad = run_cli("traces", "export", "-p", str(ATIF18), "--format", "otel", "--encoding", "pb",
                  "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "writes a folder" in bad.stderr


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_endpoint_receives_one_request_per_trial(tmp_path):
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        proc = run_cli("traces", "export", "--sample", "--format", "otel",
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer xyz"})
        assert proc.returncode == 0, proc.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Receiver.received) == 6  # the sample job's six trials
    traces = set()
    for path, headers, body in _Receiver.received:
        assert path == "/v1/traces" and headers["Authorization"] == "Bearer xyz"
        traces.add(check_trace(ExportTraceServiceRequest.FromString(body))["root"].trace_id)
    assert len(traces) == 6
    down = run_cli("traces", "export", "--sample", "--format", "otel", "--endpoint", url)
    assert down.returncode != 0 and "cannot reach the OTLP endpoint" in down.stderr and "Traceback" not in down.stderr


def test_traces_are_redacted(tmp_path):
    job = tmp_path / "job"
    shutil.copytree(TOOL_JOB, job)
    path = next(job.glob("*/agent/trajectory.json"))
    secret = "ghp_" + "R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2o"
    path.write_text(path.read_text().replace("Let me look at the failing test", f"token {secret} then look"))
    out = tmp_path / "t.jsonl"
    run_cli("traces", "export", "-p", str(job), "--format", "otel", "-o", str(out), check=True)
    text = out.read_text()
    assert secret not in text and "[REDACTED:github]" in text


@pytest.mark.parametrize("endpoint", ["notaurl", "http://[::1", "ftp://x/y", "http://", "http://127.0.0.1:99999"])
def test_a_bad_endpoint_is_a_usage_error_before_any_work(tmp_path, endpoint):
    proc = run_cli("traces", "export", "-p", str(TOOL_JOB), "--format", "otel", "--endpoint", endpoint)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "endpoint" in proc.stderr
    env_proc = run_cli("traces", "export", "-p", str(TOOL_JOB), "--format", "otel",
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert env_proc.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT" in env_proc.stderr


def test_rerun_over_our_own_output(tmp_path):
    out = tmp_path / "t.jsonl"
    for _ in range(2):  # the second run replaces our own file without --overwrite
        run_cli("traces", "export", "-p", str(TOOL_JOB), "--format", "otel", "-o", str(out), check=True)
    out.write_text('{"resourceSpans": [], "not": "ours"}\n')
    refused = run_cli("traces", "export", "-p", str(TOOL_JOB), "--format", "otel", "-o", str(out))
    assert refused.returncode == 2 and "holds no harbor-hooks export" in refused.stderr
