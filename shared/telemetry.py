"""Tracing setup: one tracer provider per process, spans carried across Kafka in headers.

Spans go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and/or to a
JSON-lines file (`VS_TRACE_FILE`) for the local stack.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faststream.kafka.opentelemetry.provider import KafkaTelemetrySettingsProvider
from faststream.kafka.response import KafkaPublishCommand
from faststream.opentelemetry.middleware import TelemetryMiddleware
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.semconv.trace import SpanAttributes
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line; several processes may share the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_span_record(span), separators=(",", ":")) for span in spans]
        with self._lock, self._path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "links": [format(link.context.trace_id, "032x") for link in span.links],
        "attributes": {
            k: v
            for k, v in (span.attributes or {}).items()
            if isinstance(v, str | int | float | bool)
        },
    }


def configure_tracing(
    service_name: str, instance_id: str, trace_file: Path | None
) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.instance.id": instance_id})
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_file is not None:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(trace_file)))
    trace.set_tracer_provider(provider)
    return provider


@contextmanager
def trace_of_our_own(name: str, headers: Iterable[tuple[str, bytes]]) -> Iterator[None]:
    """Work on a message from outside (a partner's) in a new trace of this process.

    A trace id shared with the sender would link the sender's domain to ours in every
    event, audit entry and span downstream (a partner's trace to a matching pseudonym).
    So the work starts a root span; the sender's trace is kept only as a link on that
    span, inside this process's own spans, for an operator following one message."""
    carrier = {
        key: value.decode("latin-1")
        for key, value in headers
        if key in ("traceparent", "tracestate")
    }
    sender = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
    sent_in = sender.get_span_context()
    links = [Link(sent_in)] if sent_in.is_valid else []
    tracer = trace.get_tracer("vroegsignaal")
    with tracer.start_as_current_span(name, context=Context(), links=links):
        yield


def current_trace_id() -> str | None:
    """The hex trace id of the active span, or None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class _KeylessProvider(KafkaTelemetrySettingsProvider):
    """FastStream's Kafka span attributes without the message key.

    Our keys are subject pseudonyms; a trace backend must never hold them.
    """

    def get_publish_attrs_from_cmd(self, cmd: KafkaPublishCommand) -> dict[str, Any]:
        attrs = super().get_publish_attrs_from_cmd(cmd)
        attrs.pop(SpanAttributes.MESSAGING_KAFKA_MESSAGE_KEY, None)
        return attrs

    def get_consume_attrs_from_message(self, msg: Any) -> dict[str, Any]:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs.pop(SpanAttributes.MESSAGING_KAFKA_MESSAGE_KEY, None)
        return attrs


def _keyless_provider_factory(msg: Any) -> _KeylessProvider:
    return _KeylessProvider()


class KeylessKafkaTelemetryMiddleware(TelemetryMiddleware[KafkaPublishCommand]):
    """Kafka tracing middleware that carries context in headers and never records keys."""

    def __init__(self, *, tracer_provider: TracerProvider) -> None:
        super().__init__(
            settings_provider_factory=_keyless_provider_factory,
            tracer_provider=tracer_provider,
        )
