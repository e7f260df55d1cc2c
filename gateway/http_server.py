"""The gateway's HTTP server: one uvicorn ``Server`` built in one place.

``uvicorn_server`` is the only place uvicorn's settings are chosen, so every
addition (the access log, a protocol class guarding against slow clients, a
benchmark's echo server wanting the very same stack) is one more entry in
``options``, merged over :data:`DEFAULTS`.

Why these defaults (measured by ``python -m bench``, scenario 9):

- ``http="httptools"``: the C parser; h11 (pure Python) cost about a third of
  the gateway's CPU per request;
- ``access_log=False``: uvicorn formats and emits one log record per request
  on the event loop, which costs as much as parsing the request. Operators
  turn it on with ``GATEWAY_ACCESS_LOG=on`` (:class:`gateway.settings.GatewaySettings`);
- ``proxy_headers=False``: uvicorn would otherwise believe X-Forwarded-For
  from loopback peers, letting any local client pick the address logins are
  recorded with;
- ``log_config=None``: the process's logging is configured once, elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp

__all__ = ["DEFAULTS", "uvicorn_server"]

DEFAULTS: Final[Mapping[str, Any]] = {
    "http": "httptools",
    "access_log": False,
    "lifespan": "on",
    "log_config": None,
    "proxy_headers": False,
}


def uvicorn_server(
    app: ASGIApp, graceful_seconds: float, options: Mapping[str, Any] | None = None
) -> uvicorn.Server:
    """A loaded uvicorn server for ``app``: :data:`DEFAULTS`, then ``options`` over them.

    ``graceful_seconds`` bounds how long a stop waits for requests in flight
    (at least one second: uvicorn takes whole seconds).
    """
    settings = {
        **DEFAULTS,
        "timeout_graceful_shutdown": max(1, round(graceful_seconds)),
        **(options or {}),
    }
    config = uvicorn.Config(app, **settings)
    if config.access_log and settings.get("log_config") is None:
        # uvicorn turns the access logger's propagation off for a server without
        # the log, for the whole process; lines must reach the process's handlers.
        logging.getLogger("uvicorn.access").propagate = True
    config.load()
    return uvicorn.Server(config)
