"""--format otel: each trial read, filtered and redacted as for rows, then made an OTLP trace
(formats/otel.py). One trial at a time, in this process: a trace is small, and what it
holds is bounded like a row's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from harbor_hooks.errors import SettingsError
from harbor_hooks.formats.otel import trial_request
from harbor_hooks.options import ExportOptions
from harbor_hooks.pipeline import trial_batches
from harbor_hooks.pipeline.redact import Redactor
from harbor_hooks.pipeline.transform import _redacted, _relative, at_trial_boundary, read_trial, redact_report
from harbor_hooks.readers.meta import JobResults
from harbor_hooks.report import ExportReport, fs_text


def proto() -> Any:
    """The OTLP protobuf classes (the [otel] extra: opentelemetry-proto)."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource
        from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
    except ImportError:
        raise SettingsError("--format otel needs opentelemetry-proto: pip install 'harbor-hooks[otel]'") from None
    return SimpleNamespace(ExportTraceServiceRequest=ExportTraceServiceRequest, AnyValue=AnyValue,
                           InstrumentationScope=InstrumentationScope, KeyValue=KeyValue, Resource=Resource,
                           ResourceSpans=ResourceSpans, ScopeSpans=ScopeSpans, Span=Span)


def otel_requests(roots: list[str], opts: ExportOptions, report: ExportReport) -> Iterator[tuple[str, Any]]:
    """(trial name, ExportTraceServiceRequest) of every trial exported; the others counted."""
    pb = proto()
    redactor = Redactor(opts.redact_patterns) if opts.redact else None
    jobs = JobResults(report)
    for root, trial_dirs in trial_batches([os.fspath(r) for r in roots], opts.recursive, report):
        for trial_dir in trial_dirs:
            def trace_of() -> tuple[str, Any] | None:
                found = read_trial(trial_dir, jobs, opts, report)
                if found is None:
                    return None
                meta, trace, _ = found
                source_path = fs_text(_relative(trial_dir, root))
                if redactor is not None:
                    meta, source_path, _ = _redacted(redactor, trace, trace.unique_turns(), meta, source_path, None)
                return meta.trial_name or os.path.basename(trial_dir), trial_request(pb, trace, meta, source_path)

            named = at_trial_boundary(trial_dir, report, trace_of)
            if named is not None:
                report.trials_exported += 1
                report.rows += 1
                yield named
    redact_report(redactor, report)
