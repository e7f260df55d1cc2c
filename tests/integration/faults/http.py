"""HTTP traffic through the gateway during a fault, every answer timed.

A minimal HTTP/1.1 client over asyncio streams (one connection per request,
like curl; no thread pool, so a hung request never delays the others' clocks)
and :class:`Traffic`: a reader polling one user every 50 ms, a few clients
logging in, and a health poller, each a bounded loop that records every
answer with when it started and how long it took.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Longer than the gateway's own 30 s deadline: a 504 from it must be seen as such.
CLIENT_TIMEOUT = 40.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: ``status`` 0 when no HTTP answer came (refused, or our timeout)."""

    kind: str
    started: float
    seconds: float
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self) -> str:
        payload = self.json()
        return str(payload.get("error", "")) if isinstance(payload, dict) else ""

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<{self.kind} {self.status} in {self.seconds:.2f}s: {self.body[:160]!r}>"


async def request(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    kind: str = "",
    give_up_after: float = CLIENT_TIMEOUT,
) -> Answer:
    """One request to 127.0.0.1:``port``; never raises for a failed exchange."""
    started = time.monotonic()
    data = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Connection: close",
        f"Content-Length: {len(data)}",
        "Content-Type: application/json",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    try:
        async with asyncio.timeout(give_up_after):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(raw)
                await writer.drain()
                response = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        return Answer(kind, started, time.monotonic() - started, 0, repr(exc).encode())
    head, _, payload = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return Answer(kind, started, time.monotonic() - started, status, payload)


@dataclass
class Traffic:
    """Bounded HTTP loops against one gateway port (see the module docstring).

    ``read_path`` is polled every ``read_every`` seconds; each of ``logins``
    (email, password) logs in again and again; /health/ready every 0.5 s.
    """

    port: int
    read_path: str
    token: str
    logins: list[tuple[str, str]]
    read_every: float = 0.05
    users: list[str] = field(default_factory=list)  # the ids it reads and logs in as
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, *, max_seconds: float = 150.0) -> None:
        deadline = time.monotonic() + max_seconds
        auth = {"Authorization": f"Bearer {self.token}"}
        loops: list[tuple[str, Callable[[], Any], float]] = [
            ("read", lambda: request(self.port, "GET", self.read_path, headers=auth), 0),
            ("health", lambda: request(self.port, "GET", "/health/ready"), 0.5),
        ]
        for email, password in self.logins:
            loops.append(("login", self._login(email, password), 0.1))
        for kind, call, pause in loops:
            every = self.read_every if kind == "read" else pause
            self._tasks.append(asyncio.create_task(self._loop(kind, call, every, deadline)))

    def _login(self, email: str, password: str) -> Callable[[], Any]:
        body = {"email": email, "password": password}
        return lambda: request(self.port, "POST", "/login", body=body)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _loop(
        self, kind: str, call: Callable[[], Any], every: float, deadline: float
    ) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            answer: Answer = await call()
            self.answers.append(
                Answer(kind, answer.started, answer.seconds, answer.status, answer.body)
            )
            await asyncio.sleep(every)

    def of(self, kind: str, *, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [a for a in self.answers if a.kind == kind and since <= a.started <= until]

    def first(
        self, kind: str, predicate: Callable[[Answer], bool], *, since: float = 0.0
    ) -> Answer | None:
        """The first answer of ``kind`` started after ``since`` matching ``predicate``."""
        for answer in sorted(self.of(kind, since=since), key=lambda a: a.started):
            if predicate(answer):
                return answer
        return None
