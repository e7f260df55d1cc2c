"""``GET /console``: the web console's static assets (``gateway/console/``).

The console is plain HTML, CSS and ES modules with no build step: what is
in ``gateway/console/`` is what the browser gets. The files are read once,
when the app is built, into an immutable table keyed by file name; a
request only looks its name up there, so no request path ever reaches the
file system (no traversal, no surprise files).

Every answer carries:

- a ``Content-Security-Policy`` that allows this origin only (scripts,
  styles, images, fetches) and nothing inline, so the page can load or call
  nothing from another host even if a future edit tried to;
- ``Cache-Control: no-cache`` with a strong ``ETag``: file names are not
  content-hashed, so the browser must revalidate each load (a 304 when the
  file did not change) and never runs a stale module after an upgrade;
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

``/console`` and ``/console/`` answer ``index.html``; the page's URLs are
absolute (``/console/app.js``), so either works as the address.

The same machinery serves the API's docs page (:mod:`gateway.docs`) under
its own prefix: :func:`load_assets`, :func:`answer` and :class:`AssetHandler`
take the prefix (and the policy) as parameters, the console's by default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import not_found
from gateway.path_template import PathTemplate, parse

ASSETS_DIR: Final = Path(__file__).with_name("console")
PREFIX: Final = "/console"
# One template serves the page and every asset: ``**`` also matches nothing.
TEMPLATE: Final[PathTemplate] = parse(PREFIX + "/{asset=**}")
INDEX: Final = "index.html"

CONTENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".ico": "image/x-icon",
    }
)

# 'self' only, and nothing inline (no 'unsafe-inline' for scripts or styles):
# the console's own files are the only code and style the page may run.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
CACHE_CONTROL: Final = "no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the console: its bytes, media type and strong ETag."""

    body: bytes
    content_type: str
    etag: str


def load_assets(
    folder: Path = ASSETS_DIR, *, index: str | None = INDEX, under: str = ""
) -> Mapping[str, Asset]:
    """Every servable file directly in ``folder`` (by name, after ``under``, e.g.
    ``vendor/``); ValueError if ``index`` is given and there is none.

    Files of a type not in :data:`CONTENT_TYPES` are not served (a stray
    editor backup or README stays private).
    """
    assets: dict[str, Asset] = {}
    for path in sorted(folder.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[under + path.name] = Asset(body, content_type, etag)
    if index is not None and index not in assets:
        raise ValueError(f"no {index} in {folder}")
    return MappingProxyType(assets)


def asset_name(raw_path: str, prefix: str = PREFIX) -> str:
    """The file a request path names: ``/console`` and ``/console/`` are the index."""
    name = raw_path[len(prefix) :].strip("/")
    return name or INDEX


def security_headers(policy: str = CONTENT_SECURITY_POLICY) -> dict[str, str]:
    """Headers every answer carries, a 304 included."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": CACHE_CONTROL,
    }


def answer(
    assets: Mapping[str, Asset],
    raw_path: str,
    if_none_match: str,
    *,
    prefix: str = PREFIX,
    policy: str = CONTENT_SECURITY_POLICY,
) -> Response:
    """The response for one request; GatewayError 404 for a name that is not an asset."""
    asset = assets.get(asset_name(raw_path, prefix))
    if asset is None:
        raise not_found(f"no asset at {raw_path[:200]}")
    headers = {**security_headers(policy), "ETag": asset.etag}
    if asset.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


class AssetHandler:
    """A gateway local handler serving ``assets`` under ``prefix`` with ``policy``
    (see ``gateway.dispatch.LocalHandler``); the console's by default."""

    def __init__(
        self,
        assets: Mapping[str, Asset],
        *,
        prefix: str = PREFIX,
        policy: str = CONTENT_SECURITY_POLICY,
    ) -> None:
        self.assets = assets
        self.prefix = prefix
        self.policy = policy

    async def __call__(self, request: Request, state: object) -> Response:
        return answer(
            self.assets,
            request.url.path,
            request.headers.get("if-none-match", ""),
            prefix=self.prefix,
            policy=self.policy,
        )
