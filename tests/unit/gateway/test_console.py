"""The console's assets and the gateway route serving them (gateway.console)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import console
from gateway.app import build_app
from gateway.errors import GatewayError
from gateway.settings import GatewaySettings
from tests.auth_support import TEST_ENV
from tests.unit.gateway.asgi import asgi

pytestmark = pytest.mark.unit

# Every URL a console file names: import specifiers, src/href attributes, CSS url().
_IMPORT = re.compile(r"""^(?:import|export)\b[^\n;]*?\bfrom\s*["']([^"']+)["']""", re.MULTILINE)
_ATTRIBUTE = re.compile(r"""(?:src|href)=["']([^"'#][^"']*)["']""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


@pytest.fixture(scope="module")
def assets() -> dict[str, console.Asset]:
    return dict(console.load_assets())


def test_every_file_of_the_console_is_served_with_its_type(
    assets: dict[str, console.Asset],
) -> None:
    on_disk = {p.name for p in console.ASSETS_DIR.iterdir() if p.suffix in console.CONTENT_TYPES}
    assert set(assets) == on_disk
    assert assets["index.html"].content_type == "text/html; charset=utf-8"
    assert all(
        a.content_type.startswith("text/javascript") for n, a in assets.items() if n.endswith(".js")
    )
    assert assets["console.css"].content_type.startswith("text/css")


def test_every_url_the_console_names_is_one_of_its_own_assets(
    assets: dict[str, console.Asset],
) -> None:
    """No file refers to another host, and every relative or absolute URL resolves here."""
    for name, asset in assets.items():
        text = asset.body.decode()
        urls = _IMPORT.findall(text) if name.endswith(".js") else []
        urls += _ATTRIBUTE.findall(text) if name.endswith(".html") else []
        urls += _CSS_URL.findall(text) if name.endswith(".css") else []
        for url in urls:
            if url.startswith("data:"):
                continue
            assert "//" not in url, f"{name} names another host: {url}"
            target = url.removeprefix("/console/").removeprefix("./")
            assert target in assets, f"{name} names {url}, which is not a console asset"


def test_the_console_calls_the_api_under_v1_from_one_module(
    assets: dict[str, console.Asset],
) -> None:
    for name, asset in assets.items():
        if name.endswith(".js") and name != "api.js":
            assert "fetch(" not in asset.body.decode(), f"{name} calls fetch itself"
    assert 'const BASE = "/v1";' in assets["api.js"].body.decode()


def test_asset_names_from_paths() -> None:
    assert console.asset_name("/console") == "index.html"
    assert console.asset_name("/console/") == "index.html"
    assert console.asset_name("/console/app.js") == "app.js"


def test_an_unknown_or_traversing_name_is_404_json(assets: dict[str, console.Asset]) -> None:
    for path in ("/console/nope.js", "/console/../app.py", "/console/%2e%2e/console.py"):
        with pytest.raises(GatewayError) as caught:
            console.answer(assets, path, "")
        assert caught.value.status == 404


def test_answers_carry_a_csp_that_forbids_other_hosts_and_revalidate(
    assets: dict[str, console.Asset],
) -> None:
    response = console.answer(assets, "/console/app.js", "")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", (name, directives[name])
    assert "http" not in csp and "*" not in csp and "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    etag = response.headers["etag"]
    again = console.answer(assets, "/console/app.js", f'"other", {etag}')
    assert again.status_code == 304 and again.body == b""
    assert again.headers["etag"] == etag
    assert again.headers["content-security-policy"] == csp


def test_loading_a_folder_without_an_index_fails(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("export {};\n")
    (tmp_path / "notes.txt").write_text("not served\n")
    with pytest.raises(ValueError, match=r"index\.html"):
        console.load_assets(tmp_path)
    (tmp_path / "index.html").write_text("<!doctype html>\n")
    assert set(console.load_assets(tmp_path)) == {"app.js", "index.html"}


async def test_the_gateway_serves_the_console_beside_the_api() -> None:
    app = build_app(GatewaySettings.from_env(dict(TEST_ENV)))
    for path in ("/console", "/console/"):
        status, headers, body = await asgi(app, "GET", path)
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert b"/console/app.js" in body
    status, headers, _ = await asgi(app, "GET", "/console/api.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    status, _, body = await asgi(app, "GET", "/console/missing.js")
    assert status == 404 and b'"NOT_FOUND"' in body
    status, headers, _ = await asgi(app, "POST", "/console")
    assert status == 405 and headers["allow"] == "GET"
