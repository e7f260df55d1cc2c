"""The API's docs page (/docs) in Debian's headless Chromium: Swagger UI renders the
gateway's /openapi.json, and no request leaves 127.0.0.1 (nor breaks the page's CSP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import LOCAL_HOST, browser_session, missing_browser
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "docs"


def test_the_docs_page_loads_from_the_gateway_alone(e2e_system: SystemProcess) -> None:
    missing = missing_browser()
    if missing:
        pytest.fail(missing)
    mode = "production" if e2e_system.env.get("EVENT_STORE_BACKEND") == "clickhouse" else "embedded"
    base = f"http://{LOCAL_HOST}:{e2e_system.ports.auth}"
    with browser_session(ARTIFACTS / mode) as session:
        page = session.new_page()
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock-tag", timeout=30_000)
        tags = page.locator(".opblock-tag").all_inner_texts()
        assert any("CommandService" in t for t in tags), tags
        assert "cqrs-users REST gateway" in page.locator(".info .title").inner_text()
        page.locator(".opblock-tag", has_text="CommandService").first.click()
        register = page.locator(".opblock-summary", has_text="/v1/register").first
        register.click()
        page.wait_for_selector("text=Who may call: anyone", timeout=10_000)
        # A protected operation shows its lock; the public one does not.
        email = page.locator(".opblock", has_text="/v1/users/{id}/email").first
        assert email.locator(".authorization__btn").count() == 1
        assert (
            page.locator(".opblock", has_text="/v1/register")
            .first.locator(".authorization__btn")
            .count()
            == 0
        )
        session.screenshot(page, "docs")
        requested = list(session.requests)
        problems = session.problems()
    assert not problems, "\n".join(problems)
    assert f"GET {base}/openapi.json" in requested
    assert f"GET {base}/docs/vendor/swagger-ui-bundle.js" in requested
