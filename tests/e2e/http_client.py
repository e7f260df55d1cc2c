"""A plain HTTP client over http.client, as curl would talk to the gateway.

Every response body is recorded in the session's :class:`BodyLog`. A
request can be sent from another loopback address (``source``) so that
tests exercising the per-address login limit do not use up the budget of
127.0.0.1, which every other test logs in from. A client may put a
``prefix`` before every path: ``/v1`` talks to our shapes, no prefix to the
seed's routes.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.e2e.body_log import BodyLog

JSON = "application/json"
# What `curl -d` sends when no Content-Type is given, as the seed's lines do.
CURL_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, headers (lower-case names) and body of one answer."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The ``error`` of an error body (fails the test if the body is not one)."""
        data = self.json()
        assert isinstance(data, dict), self.describe()
        assert {"error", "code"} <= set(data) <= {"error", "code", "violations"}, self.describe()
        message = data["error"]
        assert isinstance(message, str)
        return message

    @property
    def violations(self) -> dict[str, str]:
        """The invalid fields of a 400 and what is wrong with each (fails the test if
        the body has none, or they are not ``[{"field", "description"}]``)."""
        self.error  # noqa: B018  # the body is an error body
        listed = self.json().get("violations")
        assert isinstance(listed, list) and listed, self.describe()
        found: dict[str, str] = {}
        for item in listed:
            assert isinstance(item, dict) and set(item) == {"field", "description"}, item
            assert isinstance(item["field"], str) and isinstance(item["description"], str)
            found[item["field"]] = item["description"]
        return found

    @property
    def code(self) -> str:
        code = self.json()["code"]
        assert isinstance(code, str)
        return code

    def describe(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.body[:500]!r}"


@dataclass(frozen=True, slots=True)
class HttpClient:
    """Requests to one gateway port on 127.0.0.1."""

    port: int
    log: BodyLog
    timeout: float = 30.0
    prefix: str = ""

    def on(self, port: int) -> HttpClient:
        """The same client talking to another port."""
        return HttpClient(port, self.log, self.timeout, self.prefix)

    def with_prefix(self, prefix: str) -> HttpClient:
        """The same client putting ``prefix`` (e.g. ``/v1``, or "" for none) before paths."""
        return HttpClient(self.port, self.log, self.timeout, prefix)

    @property
    def root(self) -> HttpClient:
        """The same client without a prefix (/health, /metrics, /openapi.json, seed routes)."""
        return self.with_prefix("")

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = JSON,
        source: str | None = None,
    ) -> HttpResponse:
        """One request; ``json_body`` is serialised, ``data`` is sent as is."""
        path = self.prefix + path
        body = data if json_body is None else json.dumps(json_body).encode()
        sent: dict[str, str] = {}
        if body is not None:
            sent["Content-Type"] = content_type
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        conn = http.client.HTTPConnection(
            "127.0.0.1",
            self.port,
            timeout=self.timeout,
            source_address=(source, 0) if source else None,
        )
        try:
            conn.request(method, path, body=body, headers=sent)
            raw = conn.getresponse()
            payload = raw.read()
            answer = HttpResponse(
                method=method,
                path=path,
                status=raw.status,
                headers={k.lower(): v for k, v in raw.getheaders()},
                body=payload,
            )
        finally:
            conn.close()
        self.log.add(f"HTTP {method} {path} -> {answer.status}", payload)
        return answer

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("DELETE", path, **kwargs)
