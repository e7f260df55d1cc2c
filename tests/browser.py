"""Debian's Chromium, headless, driven by Playwright, watching every request it makes.

Shared by the browser tests of the console (tests/e2e/console) and the docs page.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(Debian's package, installed by ``scripts/browser.sh``) with a fresh
user-data folder per session and the flags that keep Chromium quiet on a
machine without network (no background networking, component updates,
sync or QUIC, which would otherwise fill the log with refused connections).

A :class:`BrowserSession` records every request any of its pages sends
(``BrowserContext.on("request")`` sees documents, scripts, fetches and
streams alike) and every problem the page reports: uncaught exceptions and
Content-Security-Policy refusals. ``problems()`` turns them into messages;
the tests assert it is empty, so a request to any host but 127.0.0.1 fails
the test that caused it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_HOST = "127.0.0.1"
# Schemes that never leave the page (no host to check).
_HOSTLESS = ("data:", "blob:", "about:")


def missing_browser() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing: run scripts/browser.sh (Debian's chromium, chromium-driver)"
    return ""


def foreign_host(url: str) -> str:
    """The host a request went to if it is not 127.0.0.1, else ""."""
    if url.startswith(_HOSTLESS):
        return ""
    host = urlsplit(url).hostname or url
    return "" if host == LOCAL_HOST else host


# No slots: Playwright keeps a wrapper on the object of a bound method it is given.
@dataclass
class BrowserSession:
    """One Chromium (fresh profile) with one context; every request and page problem recorded."""

    context: BrowserContext
    artifacts: Path
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def new_page(self, *, width: int = 1280, height: int = 900) -> Page:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.set_default_timeout(15_000)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught in the page: {exc}"))
        return page

    def _on_request(self, request: Request) -> None:
        self.requests.append(f"{request.method} {request.url}")

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.errors.append(f"CSP: {message.text}")

    def foreign_requests(self) -> list[str]:
        """Every recorded request to a host other than 127.0.0.1."""
        return [line for line in self.requests if foreign_host(line.split(" ", 1)[1])]

    def problems(self) -> list[str]:
        return [f"request left {LOCAL_HOST}: {line}" for line in self.foreign_requests()] + list(
            self.errors
        )

    def screenshot(self, page: Page, name: str) -> Path:
        """A full-page PNG in the artifacts folder; its path is printed for the test log."""
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@contextmanager
def browser_session(artifacts: Path) -> Iterator[BrowserSession]:
    """Launches Chromium on a fresh user-data folder and closes it (and the folder) after."""
    artifacts.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=list(CHROMIUM_FLAGS),
                service_workers="block",
            )
            session = BrowserSession(context, artifacts)
            context.on("request", session._on_request)
            try:
                yield session
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
