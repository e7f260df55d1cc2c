"""The gateway's uvicorn server: defaults, options merged over them, the access log."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.connection_limits import Parser, guarded_protocol
from gateway.http_server import uvicorn_server
from gateway.settings import GatewaySettings
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app() -> Starlette:
    return Starlette(routes=[Route("/", _ok)])


def test_defaults_are_the_fast_parser_no_access_log_no_proxy_headers() -> None:
    config = uvicorn_server(_app(), 5.0).config
    assert config.http_protocol_class is HttpToolsProtocol
    assert config.access_log is False
    assert config.proxy_headers is False
    assert config.timeout_graceful_shutdown == 5


def test_options_win_over_the_defaults() -> None:
    # What another module adds (a protocol class of its own, the access log) merges in.
    config = uvicorn_server(
        _app(), 0.2, {"http": H11Protocol, "access_log": True, "limit_concurrency": 7}
    ).config
    assert config.http_protocol_class is H11Protocol
    assert config.access_log is True
    assert config.limit_concurrency == 7
    assert config.timeout_graceful_shutdown == 1  # uvicorn counts whole seconds


def test_access_log_setting() -> None:
    assert GatewaySettings.from_env({}).access_log is False
    assert GatewaySettings.from_env({"GATEWAY_ACCESS_LOG": "on"}).access_log is True
    assert GatewaySettings.from_env({"GATEWAY_ACCESS_LOG": "off"}).access_log is False
    with pytest.raises(SettingsError, match="GATEWAY_ACCESS_LOG"):
        GatewaySettings.from_env({"GATEWAY_ACCESS_LOG": "yes"})


async def _get_once(access_log: bool, caplog: pytest.LogCaptureFixture) -> list[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn_server(_app(), 1.0, {"access_log": access_log, "lifespan": "off"})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # As gateway.app.start runs it: startup (listening once it returns), main loop.
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        task = asyncio.create_task(server.main_loop())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200")
        finally:
            server.should_exit = True
            await task
            await server.shutdown(sockets=[sock])
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]


async def test_access_log_lines_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    assert await _get_once(False, caplog) == []
    lines = await _get_once(True, caplog)
    assert len(lines) == 1 and '"GET / HTTP/1.1" 200' in lines[0]


def test_http_parser_setting() -> None:
    assert GatewaySettings.from_env({}).http_parser == "httptools"
    assert GatewaySettings.from_env({"GATEWAY_HTTP_PARSER": "h11"}).http_parser == "h11"
    with pytest.raises(SettingsError, match="GATEWAY_HTTP_PARSER"):
        GatewaySettings.from_env({"GATEWAY_HTTP_PARSER": "fast"})


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_the_guarded_protocol_is_built_on_the_chosen_parser(parser: Parser) -> None:
    base = HttpToolsProtocol if parser == "httptools" else H11Protocol
    protocol = guarded_protocol(read_timeout=1, max_connections=2, max_per_client=1, parser=parser)
    assert issubclass(protocol, base)
    assert uvicorn_server(_app(), 1.0, {"http": protocol}).config.http_protocol_class is protocol
