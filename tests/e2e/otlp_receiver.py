"""An in-process OTLP/gRPC trace receiver: what a collector would receive.

It implements ``opentelemetry.proto.collector.trace.v1.TraceService`` on a
free loopback port and keeps every span exported to it, with the
``service.name`` of the resource that sent it.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 hex digits


class OtlpReceiver(pb_grpc.TraceServiceServicer):
    """Collects spans; ``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def Export(self, request: pb.ExportTraceServiceRequest, context: Any) -> Any:
        received = []
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                received += [
                    ReceivedSpan(service, span.name, span.trace_id.hex())
                    for span in scope_spans.spans
                ]
        with self._lock:
            self._spans += received
        return pb.ExportTraceServiceResponse()

    def spans(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if s.trace_id == trace_id]

    def wait_for_services(
        self, trace_id: str, services: set[str], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """The trace's spans once every service in ``services`` sent one (or at timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.spans(trace_id)
            if services <= {s.service for s in found}:
                return found
            time.sleep(0.2)
        return self.spans(trace_id)

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop(grace=None)
