"""``python -m bench.gateway_request``: the gateway's own CPU for one HTTP ChangeEmail.

In process, no server and no network: the gateway app (as ``build_app`` makes
it, every route, no CORS) is called through its ASGI interface with
``PUT /v1/users/{id}/email`` and a bearer token, and the gRPC call answers a
canned ``ChangeEmailResponse`` at once. What is timed is what the gateway does
per request above uvicorn and grpcio: routing, headers to metadata, body to
message (checks, ``ParseDict``), reply to JSON and the Starlette response.
Scenario 9 of ``python -m bench`` measures the whole path with servers.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cqrs.command.v1 import command_pb2 as cpb

from gateway.app import build_app
from gateway.settings import GatewaySettings
from service_kit import keys

_CALLS = 5000


class _Answer:
    """The unary callable of every RPC: the reply a command_svc would give."""

    async def __call__(self, message: Any, **call_options: Any) -> Any:
        return cpb.ChangeEmailResponse(
            id=message.id, message="email changed", email=message.new_email, version=7, position=9
        )


class _Backends:
    def unary(self, rpc: Any) -> _Answer:
        return _Answer()


async def per_request_us(calls: int = _CALLS) -> float:
    """CPU microseconds (this process) per request, after a warm-up."""
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as folder:
        keys.init_keys(Path(folder), keys.DEFAULT_SIGNERS)
        app = build_app(GatewaySettings.from_env({"KEYS_DIR": folder}), service_metadata=list)
    app.state.gateway.backends = _Backends()
    path = f"/v1/users/{uuid.uuid4()}/email"
    body = b'{"new_email":"someone-12@bench.example.com"}'
    scope = {
        "type": "http",
        "method": "PUT",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8088"),
            (b"authorization", b"Bearer " + b"t" * 400),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8088),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "app": app,
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    await run(200)
    started = time.process_time()
    await run(calls)
    used = time.process_time() - started
    if set(statuses) != {200}:
        raise AssertionError(f"statuses {sorted(set(statuses))}")
    return used / calls * 1e6


def main() -> None:
    print(f"gateway, one HTTP ChangeEmail in process: {asyncio.run(per_request_us()):.1f} us CPU")


if __name__ == "__main__":
    main()
