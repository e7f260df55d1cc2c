"""``GET /docs``: the API's docs page, Swagger UI over ``/openapi.json``, from local files.

The page (``gateway/docs/``: ``index.html``, ``docs.js``, ``docs.css``) loads
Swagger UI from ``/docs/vendor/`` (``swagger-ui-bundle.js`` and
``swagger-ui.css``, copied by ``make gen`` from the npm package
``swagger-ui-dist`` that ``package.json`` pins, and committed like ``gen/``,
so ``make up`` needs no Node). It is served like the console
(:mod:`gateway.console`: read once at start, ETag, ``no-cache``) with the
console's Content-Security-Policy, which allows this origin only: nothing is
loaded from another host, nothing runs inline, and "Try it out" calls this
gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from gateway.console import Asset, load_assets
from gateway.path_template import PathTemplate, parse

ASSETS_DIR: Final = Path(__file__).with_name("docs")
VENDOR: Final = "vendor/"
PREFIX: Final = "/docs"
TEMPLATE: Final[PathTemplate] = parse(PREFIX + "/{asset=**}")


def docs_assets(folder: Path = ASSETS_DIR) -> Mapping[str, Asset]:
    """The page's files and Swagger UI's (under ``vendor/``); ValueError if one is missing."""
    vendor = load_assets(folder / VENDOR.rstrip("/"), index=None, under=VENDOR)
    for needed in ("swagger-ui-bundle.js", "swagger-ui.css"):
        if VENDOR + needed not in vendor:
            raise ValueError(f"{folder / VENDOR}{needed} is missing: run make gen")
    return MappingProxyType({**load_assets(folder), **vendor})
