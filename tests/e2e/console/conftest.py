"""Fixtures of the console's browser tests: the system of tests/e2e, a browser per test.

Each test gets a fresh Chromium profile (so a fresh sessionStorage) whose
every request is recorded; after the test, any request to a host other than
127.0.0.1, any uncaught page error and any Content-Security-Policy refusal
fails it. Screenshots go to ``test-artifacts/console/<mode>/`` at the
repository's root (ignored by git), printed as they are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import BrowserSession, browser_session, missing_browser
from tests.e2e.body_log import find_hash
from tests.e2e.system_process import SystemProcess

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "console"


def system_mode(system: SystemProcess) -> str:
    return "production" if system.env.get("EVENT_STORE_BACKEND") == "clickhouse" else "embedded"


@pytest.fixture(scope="session")
def console_url(e2e_system: SystemProcess) -> str:
    """The console on the gateway's first port."""
    return f"http://127.0.0.1:{e2e_system.ports.auth}/console"


@pytest.fixture
def browser(request: pytest.FixtureRequest, e2e_system: SystemProcess) -> Iterator[BrowserSession]:
    missing = missing_browser()
    if missing:
        pytest.fail(missing)
    artifacts = ARTIFACTS / system_mode(e2e_system) / request.node.name.replace("/", "_")
    with browser_session(artifacts) as session:
        yield session
        texts = [page.content() for page in session.context.pages]
    problems = session.problems()
    for text in texts:
        at = find_hash(text)
        if at >= 0:
            problems.append(f"a bcrypt hash on the page: {text[at - 60 : at + 60]!r}")
    assert not problems, "\n".join(problems)
