"""A trial as an OpenTelemetry trace (OTLP): one trace per trial, a span per step of each
conversation (the main agent's, each subagent's under a span of its own), and a span per
tool call under its step, carrying the call's arguments and its result.

ATIF steps carry no durations that every agent writes, so spans are laid out in order from
the trial's start, 1 ms apart: their order and nesting are the trace, not their lengths.
Ids are derived from the trial's path, so exporting a trial twice gives the same trace.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from harbor_hooks.readers.meta import TrialMeta
from harbor_hooks.readers.trace import Conversation, TrialTrace, Turn, json_text
from harbor_hooks.version import __version__

STEP_NS = 1_000_000  # 1 ms between consecutive spans


def _id(*parts: str, size: int) -> bytes:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=size).digest()


def _start_ns(date: str | None) -> int:
    try:
        return int(datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


class _Spans:
    def __init__(self, pb: Any, trace_id: bytes, start: int):
        self.pb, self.trace_id, self.clock, self.spans = pb, trace_id, start, []

    def add(self, key: str, name: str, parent: bytes | None, attributes: dict[str, Any]) -> Any:
        span = self.pb.Span(trace_id=self.trace_id, span_id=_id(key, size=8), name=name,
                            kind=self.pb.Span.SPAN_KIND_INTERNAL,
                            start_time_unix_nano=self.clock, end_time_unix_nano=self.clock + STEP_NS)
        if parent is not None:
            span.parent_span_id = parent
        self.clock += STEP_NS
        for key_name, value in attributes.items():
            if value is not None:
                span.attributes.append(_attribute(self.pb, key_name, value))
        self.spans.append(span)
        return span

    def close(self, span: Any) -> None:
        """A parent span ends after the last of its children."""
        span.end_time_unix_nano = max(span.end_time_unix_nano, self.clock)


def _attribute(pb: Any, key: str, value: Any) -> Any:
    if isinstance(value, bool):
        any_value = pb.AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = pb.AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = pb.AnyValue(double_value=value)
    else:
        any_value = pb.AnyValue(string_value=str(value))
    return pb.KeyValue(key=key, value=any_value)


def trial_request(pb: Any, trace: TrialTrace, meta: TrialMeta, source_path: str) -> Any:
    """The OTLP ExportTraceServiceRequest of one trial (pb: the protobuf classes, _proto())."""
    spans = _Spans(pb, _id(source_path, size=16), _start_ns(meta.date))
    root = spans.add(source_path, f"trial {meta.trial_name}", None, {
        "harbor.trial_name": meta.trial_name, "harbor.task": meta.task, "harbor.agent": meta.agent,
        "gen_ai.request.model": meta.model, "harbor.reward": meta.reward, "harbor.success": meta.success,
        "harbor.result": meta.result, "harbor.run_id": meta.run_id, "harbor.source_path": source_path})
    for k, conversation in enumerate(trace.conversations):
        parent = root
        if conversation.source != "main":
            parent = spans.add(f"{source_path}\0{k}", f"subagent {conversation.source}", root.span_id, {
                "harbor.trace_source": conversation.source, "gen_ai.request.model": conversation.model})
        _conversation(spans, conversation, f"{source_path}\0{k}", parent.span_id)
        spans.close(parent)
    spans.close(root)
    resource = pb.Resource(attributes=[_attribute(pb, "service.name", "harbor-hooks"),
                                       _attribute(pb, "harbor.agent", meta.agent)])
    scope = pb.InstrumentationScope(name="harbor-hooks", version=__version__)
    return pb.ExportTraceServiceRequest(resource_spans=[pb.ResourceSpans(
        resource=resource, scope_spans=[pb.ScopeSpans(scope=scope, spans=spans.spans)])])


def _conversation(spans: _Spans, conversation: Conversation, key: str, parent: bytes) -> None:
    turns = max(conversation.episodes, key=lambda e: len(e.turns)).turns if conversation.episodes else []
    results: dict[str, str] = {cid: text for t in turns if t.role == "tool" for cid, text in t.results if cid}
    for index, turn in enumerate(turns):
        step = spans.add(f"{key}\0{index}", f"{turn.role} step {index}", parent, _step_attributes(turn))
        for n, call in enumerate(turn.tool_calls):
            spans.add(f"{key}\0{index}\0{n}", f"execute_tool {call.name}", step.span_id, {
                "gen_ai.tool.name": call.name, "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.call.arguments": json_text(call.arguments),
                "gen_ai.tool.call.result": results.get(call.id) if call.id else None})
        spans.close(step)


def _step_attributes(turn: Turn) -> dict[str, Any]:
    return {"harbor.role": turn.role, "harbor.content": turn.text, "harbor.reasoning": turn.reasoning,
            "gen_ai.usage.input_tokens": turn.prompt_tokens, "gen_ai.usage.output_tokens": turn.completion_tokens,
            "harbor.tool_calls": len(turn.tool_calls) or None}
