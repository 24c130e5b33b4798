"""Tracing setup: one tracer provider per process, spans carried across Kafka in headers.

Spans go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and/or to a
JSON-lines file (`VS_TRACE_FILE`) for the local stack.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faststream._internal.middlewares import BaseMiddleware
from faststream.kafka.opentelemetry.provider import KafkaTelemetrySettingsProvider
from faststream.kafka.response import KafkaPublishCommand
from faststream.opentelemetry.consts import MESSAGING_DESTINATION_PUBLISH_NAME
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


# Headers in which a sender's trace travels; a partner's are dropped on arrival.
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


@contextmanager
def trace_of_our_own(name: str) -> Iterator[None]:
    """Work on a message from outside (a partner's) in a new trace of this process.

    A trace id shared with the sender would link the sender's domain to ours in every
    event, audit entry and span downstream (a partner's trace to a matching pseudonym),
    and so would a link to it: the partner's trace id travels in clear beside the partner
    pseudonym on the partner's topic. So the work starts a root span of its own, with no
    link; the consuming span (see `KeylessKafkaTelemetryMiddleware`) is not in the
    partner's trace either and names no partition, offset or message of it."""
    tracer = trace.get_tracer("vroegsignaal")
    with tracer.start_as_current_span(name, context=Context()):
        yield


def current_trace_id() -> str | None:
    """The hex trace id of the active span, or None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# What a consuming span of a partner's message may say: which topic, nothing more (no
# partition or offset, which point at the message and so at its key, a partner pseudonym).
_OUTSIDE_ATTRS = (SpanAttributes.MESSAGING_SYSTEM, MESSAGING_DESTINATION_PUBLISH_NAME)


class _KeylessProvider(KafkaTelemetrySettingsProvider):
    """FastStream's Kafka span attributes without the message key, and for a message from
    outside (`from_outside(topic)`) without anything that points at the message.

    Our keys are subject pseudonyms; a trace backend must never hold them.
    """

    def __init__(self, from_outside: Callable[[str], bool]) -> None:
        super().__init__()
        self._from_outside = from_outside

    def get_publish_attrs_from_cmd(self, cmd: KafkaPublishCommand) -> dict[str, Any]:
        attrs = super().get_publish_attrs_from_cmd(cmd)
        attrs.pop(SpanAttributes.MESSAGING_KAFKA_MESSAGE_KEY, None)
        return attrs

    def get_consume_attrs_from_message(self, msg: Any) -> dict[str, Any]:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs.pop(SpanAttributes.MESSAGING_KAFKA_MESSAGE_KEY, None)
        if self._from_outside(msg.raw_message.topic):
            return {k: v for k, v in attrs.items() if k in _OUTSIDE_ATTRS}
        return attrs


class KeylessKafkaTelemetryMiddleware(TelemetryMiddleware[KafkaPublishCommand]):
    """Kafka tracing middleware that carries context in headers and never records keys.

    A message from outside (`from_outside(topic)`, a partner's topic) is consumed in no
    trace of the sender's: its trace headers are dropped before the span starts, and the
    span names no partition, offset or message. A batch gets no span here: its messages
    get one each where they are applied (ServiceRuntime)."""

    def __init__(
        self, *, tracer_provider: TracerProvider, from_outside: Callable[[str], bool]
    ) -> None:
        super().__init__(
            settings_provider_factory=lambda _msg: _KeylessProvider(from_outside),
            tracer_provider=tracer_provider,
        )
        self._from_outside = from_outside

    def __call__(self, msg: Any, /, *, context: Any) -> Any:
        inner = super().__call__(msg, context=context)
        from_outside = self._from_outside

        class _ForeignTraceStops(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: Any) -> Any:
                record = getattr(msg, "raw_message", None)
                if isinstance(record, tuple):
                    # A batch: each of its messages is processed in a span of its own,
                    # in its producer's trace (ServiceRuntime); one span for the batch
                    # would link every trace in it to every other.
                    return await call_next(msg)
                topic = getattr(record, "topic", None)
                if isinstance(topic, str) and from_outside(topic):
                    for header in TRACE_HEADERS:
                        msg.headers.pop(header, None)
                return await inner.consume_scope(call_next, msg)

            async def publish_scope(self, call_next: Any, cmd: Any) -> Any:
                return await inner.publish_scope(call_next, cmd)

            async def __aenter__(self) -> Any:
                await inner.__aenter__()
                return self

            async def __aexit__(self, *exc: Any) -> Any:
                return await inner.__aexit__(*exc)

        return _ForeignTraceStops(msg, context=context)
