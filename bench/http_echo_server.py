"""A bare Starlette JSON echo on uvicorn: the HTTP ceiling on this machine.

Run as its own process (``python -m bench.http_echo_server PORT``). It is
served by :func:`gateway.http_server.uvicorn_server`, the gateway's own
server with the gateway's settings, so the gateway's ratio to it is what the
gateway adds on top of its HTTP stack: routing, transcoding, the gRPC call.
Every request's JSON body is parsed and answered back as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http_server import uvicorn_server


async def _echo(request: Request) -> Response:
    body = await request.body()
    value = json.loads(body) if body else {}
    return Response(json.dumps(value, separators=(",", ":")), media_type="application/json")


def app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST", "PUT"])])


async def serve(port: int) -> None:
    server = uvicorn_server(app(), 1.0, {"host": "127.0.0.1", "port": port, "lifespan": "off"})
    await server.serve()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
