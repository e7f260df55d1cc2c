"""CORS for the origins in ``CORS_ALLOWED_ORIGINS``, and for no other.

Off by default (no origin listed): no middleware at all, and an ``OPTIONS``
is answered 405 like any verb a route does not serve. With origins listed:

- a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
  from an allowed origin is a 204 with ``Access-Control-Allow-Origin`` (that
  origin), ``-Allow-Methods``, ``-Allow-Headers`` (what the gateway reads:
  ``Authorization``, ``Content-Type``, ``Idempotency-Key``, the trace and
  position headers), ``-Max-Age`` and ``Vary: Origin``;
- any other request from an allowed origin gets ``Access-Control-Allow-Origin``
  and ``Access-Control-Expose-Headers`` (``Retry-After``, ``X-Correlation-Id``,
  the seed routes' ignored-parameter header) so a page can read them;
- a request from any other origin gets no CORS header at all (its preflight
  goes to the app, which answers 405 as without CORS): the browser then
  refuses the page the answer. Every answer varies by ``Origin`` (``Vary``),
  so a cache never hands one origin's answer to another.

No credentials mode: the API takes bearer tokens, never cookies.

Starlette's CORSMiddleware does the header work; this subclass changes
what it does for a refused origin (Starlette answers its preflight 400 with
``Access-Control-Allow-Methods``/``-Max-Age`` and adds the exposed headers to
its other answers) and answers an accepted preflight 204 (no body) instead
of 200 "OK".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.seed_format import IGNORED_HEADER
from service_kit.settings import SettingsError

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "Cors", "parse_origins"]

ALLOWED_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Correlation-Id",
    "X-Causation-Id",
    "X-Min-Position",
)
EXPOSED_HEADERS: Final = ("Retry-After", "X-Correlation-Id", "X-Next-Page-Token", IGNORED_HEADER)
MAX_AGE_SECONDS: Final = 600


def parse_origins(raw: str, *, name: str = "CORS_ALLOWED_ORIGINS") -> tuple[str, ...]:
    """The origins of a comma-separated list; ``SettingsError`` naming ``name`` for a bad one.

    Each is ``scheme://host[:port]`` (http or https, no path, no trailing
    slash), as browsers send ``Origin``; ``*`` allows every origin.
    """
    origins: list[str] = []
    for part in raw.split(","):
        origin = part.strip()
        if not origin:
            continue
        if origin != "*":
            parsed = urlsplit(origin)
            if (
                parsed.scheme not in ("http", "https")
                or not parsed.hostname
                or origin != f"{parsed.scheme}://{parsed.netloc}"
            ):
                raise SettingsError(
                    f"{name}={raw!r}: {origin!r} is not an origin "
                    "(scheme://host[:port], e.g. https://app.example.com)"
                )
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


class Cors(CORSMiddleware):
    """CORS for ``origins`` only (see the module docstring)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=tuple(origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = Headers(scope=scope).get("origin")
            if origin is None:
                await self.app(scope, receive, send)  # not a cross-origin call
                return
            if not self.is_allowed_origin(origin):
                await self.app(scope, receive, _vary_on_origin(send))
                return
        await super().__call__(scope, receive, send)

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 200:  # a method or header not allowed: say which
            return answer
        # Starlette's headers, Vary (Origin and the request headers) included.
        dropped = ("content-length", "content-type")  # no body
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in dropped}
        return Response(status_code=204, headers=headers)


def _vary_on_origin(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.add_vary_header("Origin")
        await send(message)

    return sending
