"""``python -m bench.request_checks``: what the contract's request checks cost per call.

Prints, for N calls, in-process: protovalidate checking a valid ChangeEmail,
Register and a one-event Append request (what every call pays, through
``service_kit.request_validation``), an invalid Register (the refusal path,
violations and details built), and the gateway's CORS middleware on a
request without ``Origin`` and on one from an allowed origin, against the
same tiny ASGI app without it. Figures, not a test; the end-to-end rate is
``python -m bench --only 3``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from cqrs.command.v1 import command_pb2
from cqrs.eventstore.v1 import event_store_pb2

from gateway.cors import Cors
from service_kit import error_details
from service_kit.errors import ServiceError
from service_kit.request_validation import check

UUID = "6f1c0000-0000-4000-8000-000000000000"


def _per_call(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def _refused() -> None:
    try:
        check(command_pb2.RegisterRequest(email="not-an-email", password="short"))
    except ServiceError as exc:
        error_details.trailing_metadata(exc.code, exc.message, exc.details)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _asgi_per_call(app: Any, headers: list[tuple[bytes, bytes]], calls: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/v1/users", "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(scope, receive, send)
        return (time.perf_counter() - started) / calls * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    calls = parser.parse_args().calls

    change = command_pb2.ChangeEmailRequest(id=UUID, new_email="jane@new.example.com")
    register = command_pb2.RegisterRequest(email="jane@example.com", password="SecurePass123!")
    append = event_store_pb2.AppendRequest(aggregate_id=UUID, exact=3)
    event = append.events.add(event_id=UUID, event_type="user.email.changed")
    event.payload.update({"email": "jane@new.example.com", "old_email": "jane@example.com"})
    event.claims.add(namespace="user.email", value="jane@new.example.com")
    cors = Cors(_app, ["https://app.example.test"])
    origin = [(b"origin", b"https://app.example.test")]
    rows = [
        ("ChangeEmailRequest, valid", _per_call(lambda: check(change), calls)),
        ("RegisterRequest, valid", _per_call(lambda: check(register), calls)),
        (
            "AppendRequest (one event, payload, claim), valid",
            _per_call(lambda: check(append), calls),
        ),
        ("RegisterRequest, 2 violations (refusal + details)", _per_call(_refused, calls // 5)),
        ("ASGI call without CORS (baseline)", _asgi_per_call(_app, [], calls)),
        ("ASGI call with CORS on, no Origin", _asgi_per_call(cors, [], calls)),
        ("ASGI call with CORS on, allowed Origin", _asgi_per_call(cors, origin, calls)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:8.2f} us")


if __name__ == "__main__":
    main()
