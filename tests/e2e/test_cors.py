"""CORS over real HTTP: the origin the e2e system allows (CORS_ALLOWED_ORIGINS) gets its
preflight and headers; any other origin gets none, and OPTIONS stays 405 without CORS."""

from __future__ import annotations

import pytest

from tests.e2e.http_client import HttpClient, HttpResponse
from tests.e2e.support import register
from tests.e2e.system_process import CORS_ORIGIN

pytestmark = pytest.mark.e2e

REFUSED = "https://evil.example"


def _cors(answer: HttpResponse) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}


def _preflight(http: HttpClient, origin: str, method: str = "PUT") -> HttpResponse:
    return http.request(
        "OPTIONS",
        "/users/00000000-0000-4000-8000-000000000000/email",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_an_allowed_origins_preflight(http: HttpClient) -> None:
    answer = _preflight(http, CORS_ORIGIN)
    assert answer.status == 204, answer.describe()
    assert answer.body == b""
    assert answer.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "PUT" in answer.headers["access-control-allow-methods"].split(", ")
    allowed = answer.headers["access-control-allow-headers"].lower().split(", ")
    assert {"authorization", "content-type"} <= set(allowed)
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "Origin" in answer.headers["vary"]


def test_an_allowed_origins_answers_carry_cors_headers(http: HttpClient) -> None:
    answer = http.post(
        "/register",
        json_body={"email": "not-an-email", "password": "x"},
        headers={"Origin": CORS_ORIGIN},
    )
    assert answer.status == 400
    assert answer.headers["access-control-allow-origin"] == CORS_ORIGIN
    exposed = answer.headers["access-control-expose-headers"]
    assert "Retry-After" in exposed and "X-Correlation-Id" in exposed
    user = register(http, "cors")
    assert user.id


def test_a_refused_origin_gets_no_cors_header(http: HttpClient) -> None:
    answer = _preflight(http, REFUSED)
    assert answer.status == 405, answer.describe()
    assert not _cors(answer)
    answer = http.get("/.well-known/jwks.json", headers={"Origin": REFUSED})
    assert answer.status == 200
    assert not _cors(answer)
    assert "Origin" in answer.headers["vary"]


def test_options_without_cors_is_still_405(http: HttpClient) -> None:
    answer = http.request("OPTIONS", "/register")
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"
    assert not _cors(answer)
