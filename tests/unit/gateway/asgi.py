"""One request through an ASGI app's interface: no server, no backends needed."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, cast

from starlette.applications import Starlette


async def asgi(
    app: Starlette, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and body the app answers."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "app": app,
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    raw_headers = cast(list[tuple[bytes, bytes]], start["headers"])
    found = {name.decode().lower(): value.decode() for name, value in raw_headers}
    body = b"".join(cast(bytes, message.get("body", b"")) for message in sent[1:])
    return cast(int, start["status"]), found, body
