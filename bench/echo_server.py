"""A bare grpcio.aio echo server: the ceiling for one RPC hop on this machine.

Run as its own process (``python -m bench.echo_server PORT``) so it competes
for the cores exactly as a service process would.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

ECHO_METHOD = "/bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
