"""CORS (gateway.cors) and the docs page (gateway.docs), through the gateway's ASGI app."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette

from gateway import docs
from gateway.app import build_app
from gateway.console import CONTENT_SECURITY_POLICY
from gateway.cors import parse_origins
from gateway.settings import GatewaySettings
from service_kit.settings import SettingsError
from tests.auth_support import TEST_ENV
from tests.unit.gateway.asgi import asgi

pytestmark = pytest.mark.unit

ALLOWED = "https://app.example.test"


def _app(origins: str = "") -> Starlette:
    return build_app(GatewaySettings.from_env({**TEST_ENV, "CORS_ALLOWED_ORIGINS": origins}))


def _cors(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def test_origins_are_parsed_and_checked() -> None:
    assert parse_origins("") == ()
    assert parse_origins(f" {ALLOWED}, http://127.0.0.1:3000 ,{ALLOWED}") == (
        ALLOWED,
        "http://127.0.0.1:3000",
    )
    assert parse_origins("*") == ("*",)
    for bad in ("app.example.test", "https://app.example.test/", "ftp://x.test", "https://"):
        with pytest.raises(SettingsError, match="CORS_ALLOWED_ORIGINS"):
            parse_origins(bad)
    with pytest.raises(SettingsError, match="CORS_ALLOWED_ORIGINS"):
        GatewaySettings.from_env({**TEST_ENV, "CORS_ALLOWED_ORIGINS": "https://x.test/path"})


async def test_an_allowed_origin_gets_its_preflight_and_headers() -> None:
    app = _app(ALLOWED)
    preflight = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    status, headers, body = await asgi(app, "OPTIONS", "/v1/users/x/email", preflight)
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == ALLOWED
    assert "PUT" in headers["access-control-allow-methods"]
    assert "Authorization" in headers["access-control-allow-headers"]
    assert headers["access-control-max-age"] == "600"
    assert "Origin" in headers["vary"]
    status, headers, _ = await asgi(app, "GET", "/health/live", {"Origin": ALLOWED})
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED
    exposed = headers["access-control-expose-headers"]
    assert "Retry-After" in exposed and "X-Correlation-Id" in exposed
    assert "Origin" in headers["vary"]


async def test_another_origin_gets_no_cors_header() -> None:
    app = _app(ALLOWED)
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = await asgi(app, "OPTIONS", "/v1/register", preflight)
    assert status == 405 and not _cors(headers)
    status, headers, _ = await asgi(app, "GET", "/health/live", {"Origin": "https://evil.example"})
    assert status == 200 and not _cors(headers)
    assert headers["vary"] == "Origin"


async def test_without_origins_there_is_no_cors_and_options_is_405() -> None:
    app = _app()
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    status, headers, _ = await asgi(app, "OPTIONS", "/v1/register", preflight)
    assert status == 405 and not _cors(headers)
    status, headers, _ = await asgi(app, "OPTIONS", "/v1/register")
    assert (status, headers["allow"]) == (405, "POST")


def test_the_docs_page_names_only_its_own_files() -> None:
    assets = docs.docs_assets()
    assert {
        "index.html",
        "docs.js",
        "docs.css",
        "vendor/swagger-ui-bundle.js",
        "vendor/swagger-ui.css",
    } <= set(assets)
    index = assets["index.html"].body.decode()
    for url in re.findall(r"""(?:src|href)=["']([^"']+)["']""", index):
        if url.startswith("data:"):
            continue
        assert url.startswith("/docs/") and url.removeprefix("/docs/") in assets, url
    script = assets["docs.js"].body.decode()
    assert 'url: "/openapi.json"' in script and "validatorUrl: null" in script


async def test_the_gateway_serves_the_docs_page_from_its_own_files() -> None:
    app = _app()
    for path in ("/docs", "/docs/"):
        status, headers, body = await asgi(app, "GET", path)
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert b"/docs/vendor/swagger-ui-bundle.js" in body
    status, headers, body = await asgi(app, "GET", "/docs/vendor/swagger-ui-bundle.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert len(body) > 100_000
    for hidden in ("/docs/vendor/LICENSE", "/docs/../app.py", "/redoc"):
        status, _, _ = await asgi(app, "GET", hidden)
        assert status == 404, hidden
