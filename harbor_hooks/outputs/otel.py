"""Where OTLP traces go, as Harbor's `traces export --format otel` sends them: `--encoding
json` a JSON Lines file (one ExportTraceServiceRequest per trial, in OTLP/JSON: ids as hex),
`--encoding pb` a folder of protobuf files (one per trial), and/or `--endpoint URL` (else
OTEL_EXPORTER_OTLP_ENDPOINT): OTLP/HTTP protobuf POSTs to URL/v1/traces, with the headers
of OTEL_EXPORTER_OTLP_HEADERS."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import orjson

from harbor_hooks.errors import ExportFailed
from harbor_hooks.outputs.files import atomic_path
from harbor_hooks.outputs.guard import write_marker
from harbor_hooks.report import printable

ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: Any) -> dict[str, Any]:
    """A request as OTLP/JSON: protobuf's JSON mapping, with trace and span ids in hex."""
    from google.protobuf.json_format import MessageToDict

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: base64.b64decode(v).hex() if k in ID_KEYS and isinstance(v, str) else fix(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return fix(MessageToDict(request, use_integers_for_enums=True))


def endpoint_url(endpoint: str) -> str:
    return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"


def _headers() -> dict[str, str]:
    headers = {"Content-Type": "application/x-protobuf"}
    for pair in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        if "=" in pair:
            key, value = pair.split("=", 1)
            headers[key.strip()] = value.strip()
    return headers


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers=_headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise ExportFailed(f"{url}: the OTLP endpoint answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ExportFailed(f"{url}: cannot reach the OTLP endpoint ({getattr(exc, 'reason', exc)})") from None


def write_traces(requests: Iterable[tuple[str, Any]], output: str | None, encoding: str,
                 endpoint: str | None) -> list[str]:
    """Send every trial's trace where asked; the paths (and endpoint) written."""
    url = endpoint_url(endpoint) if endpoint else None
    if output is None:
        for _, request in requests:
            _post(url, request.SerializeToString())
        return [url] if url else []
    with atomic_path(output) as tmp:
        if encoding == "json":
            with open(tmp, "wb") as fh:
                for _, request in requests:
                    fh.write(orjson.dumps(otlp_json(request)) + b"\n")
                    if url:
                        _post(url, request.SerializeToString())
        else:
            os.makedirs(tmp)
            names: set[str] = set()
            count = 0
            for name, request in requests:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "trial"
                while safe in names:  # two trials of one name: both kept
                    safe += "_"
                names.add(safe)
                with open(os.path.join(tmp, f"{safe}.pb"), "wb") as fh:
                    fh.write(request.SerializeToString())
                count += 1
                if url:
                    _post(url, request.SerializeToString())
            write_marker(tmp, count)
    return [printable(output)] + ([url] if url else [])
