"""A client of the seed's HTTP API, as one written against the seed would be.

It calls the seed's unprefixed routes on the seed's three ports (auth 8088,
query 8089, event store 8090), sends only what the seed's clients send
(plus a bearer token, which the system now requires), and decodes every
answer into the seed's types (:mod:`tests.e2e.seed_shapes`). It keeps the
last answer of each of the seed's routes, so a test can show it called them
all and check those answers against the OpenAPI document.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from tests.e2e import seed_shapes as shapes
from tests.e2e.http_client import CURL_FORM, HttpClient, HttpResponse

T = TypeVar("T")


class SeedError(AssertionError):
    """An answer that is not the status the client expected (with the seed's error body)."""


@dataclass
class SeedClient:
    """The seed's routes on its three ports; ``token`` is sent when set."""

    auth: HttpClient
    query: HttpClient
    store: HttpClient
    token: str | None = None
    # (method, seed route) -> the last answer's body, shared by with_token copies
    answers: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def called(self) -> set[tuple[str, str]]:
        return set(self.answers)

    def with_token(self, token: str | None) -> SeedClient:
        return SeedClient(self.auth, self.query, self.store, token, self.answers)

    def _call(
        self,
        client: HttpClient,
        method: str,
        route: str,
        path: str,
        *,
        body: str | None = None,
        expect: int = 200,
    ) -> Any:
        # curl -d, as the seed's README does it: a form content type, JSON text.
        data = body.encode() if body is not None else None
        answer = client.request(method, path, data=data, content_type=CURL_FORM, token=self.token)
        if answer.status != expect:
            raise SeedError(answer.describe())
        assert answer.headers["content-type"] == "application/json", answer.describe()
        self.answers[(method, route)] = answer.json()
        return self.answers[(method, route)]

    def fails(self, port: str, method: str, path: str, *, body: str | None = None) -> HttpResponse:
        """A request expected to fail: its answer, with the seed's error body checked."""
        client = self._port(port)
        data = body.encode() if body is not None else None
        answer = client.request(method, path, data=data, content_type=CURL_FORM, token=self.token)
        assert answer.status >= 400, answer.describe()
        shapes.decode(shapes.ErrorBody, answer.json())
        return answer

    # --- auth service (8088) ---------------------------------------------------

    def _port(self, port: str) -> HttpClient:
        return {"auth": self.auth, "query": self.query, "store": self.store}[port]

    def health(self, port: str) -> Any:
        return self._call(self._port(port), "GET", "/health", "/health")

    def register(self, email: str, password: str) -> shapes.Registered:
        body = f'{{"email":"{email}","password":"{password}"}}'
        data = self._call(self.auth, "POST", "/register", "/register", body=body, expect=201)
        return shapes.decode(shapes.Registered, data)

    def change_password(self, user_id: str, old: str, new: str) -> shapes.Changed:
        body = f'{{"old_password":"{old}","new_password":"{new}"}}'
        route = "/users/{id}/password"
        data = self._call(self.auth, "PUT", route, f"/users/{user_id}/password", body=body)
        return shapes.decode(shapes.Changed, data)

    def change_email(self, user_id: str, new_email: str) -> shapes.Changed:
        body = f'{{"new_email":"{new_email}"}}'
        route = "/users/{id}/email"
        data = self._call(self.auth, "PUT", route, f"/users/{user_id}/email", body=body)
        return shapes.decode(shapes.Changed, data)

    # --- query service (8089) -------------------------------------------------

    def users(self) -> list[shapes.User]:
        data = self._call(self.query, "GET", "/users", "/users")
        return shapes.decode(list[shapes.User], data)

    def wait_for_user(self, email: str, *, timeout: float = 5.0) -> shapes.User:
        """The seed's "wait 2-3 seconds for Kafka processing", as a bounded poll."""
        deadline = time.monotonic() + timeout
        while True:
            found = [u for u in self.users() if u.Email == email]
            if found or time.monotonic() > deadline:
                assert found, f"{email} never appeared in GET /users"
                return found[0]
            time.sleep(0.05)

    def login(self, email: str, password: str) -> shapes.LoggedIn:
        body = f'{{"email":"{email}","password":"{password}"}}'
        data = self._call(self.query, "POST", "/login", "/login", body=body)
        return shapes.decode(shapes.LoggedIn, data)

    # --- event store (8090) ---------------------------------------------------

    def events(self, query: str = "") -> shapes.Events:
        path = f"/events?{query}" if query else "/events"
        return shapes.decode(shapes.Events, self._call(self.store, "GET", "/events", path))

    def aggregate_events(self, user_id: str, query: str = "") -> shapes.AggregateEvents:
        route = "/events/aggregate/{aggregate_id}"
        path = f"/events/aggregate/{user_id}" + (f"?{query}" if query else "")
        return shapes.decode(shapes.AggregateEvents, self._call(self.store, "GET", route, path))

    def count(self) -> shapes.EventCount:
        data = self._call(self.store, "GET", "/events/count", "/events/count")
        return shapes.decode(shapes.EventCount, data)

    def replay(self, since: str) -> shapes.Replayed:
        path = f"/events/replay?since={quote(since)}"
        return shapes.decode(shapes.Replayed, self._call(self.store, "GET", "/events/replay", path))

    def state(self, user_id: str) -> shapes.State:
        route = "/replay/user/{aggregate_id}/state"
        data = self._call(self.store, "GET", route, f"/replay/user/{user_id}/state")
        return shapes.decode(shapes.State, data)

    def state_at(self, user_id: str, timestamp: str) -> shapes.StateAt:
        route = "/replay/user/{aggregate_id}/state-at"
        path = f"/replay/user/{user_id}/state-at?timestamp={quote(timestamp)}"
        return shapes.decode(shapes.StateAt, self._call(self.store, "GET", route, path))

    def history(self, user_id: str) -> shapes.History:
        route = "/replay/user/{aggregate_id}/history"
        data = self._call(self.store, "GET", route, f"/replay/user/{user_id}/history")
        return shapes.decode(shapes.History, data)

    def compare(self, user_id: str, time1: str, time2: str) -> shapes.Comparison:
        route = "/replay/user/{aggregate_id}/compare"
        path = f"/replay/user/{user_id}/compare?time1={quote(time1)}&time2={quote(time2)}"
        return shapes.decode(shapes.Comparison, self._call(self.store, "GET", route, path))

    def create_snapshot(self, user_id: str) -> shapes.SnapshotCreated:
        route = "/snapshots/{aggregate_id}"
        data = self._call(self.store, "POST", route, f"/snapshots/{user_id}", expect=201)
        return shapes.decode(shapes.SnapshotCreated, data)

    def snapshot(self, user_id: str) -> shapes.Snapshot:
        route = "/snapshots/{aggregate_id}"
        data = self._call(self.store, "GET", route, f"/snapshots/{user_id}")
        return shapes.decode(shapes.Snapshot, data)

    def snapshot_state(self, user_id: str) -> shapes.SnapshotState:
        route = "/snapshots/{aggregate_id}/state"
        data = self._call(self.store, "GET", route, f"/snapshots/{user_id}/state")
        return shapes.decode(shapes.SnapshotState, data)
