"""The console on the session and health routes the API serves: nothing answered by the test.

Sign-out ends the session at the API (the token it held is refused
afterwards), the live panel reads the projector's position from the real
``/health/ready``, reactivation goes through ``POST /v1/users/{id}/activate``,
and a 401 is retried once after ``POST /v1/token/refresh`` with the real
refresh token from login. Only history reads with the login's token are made
to fail (the way an expired token would) so the refresh path runs without
waiting an access token's lifetime.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.browser import BrowserSession
from tests.e2e.console.pages import open_user, sign_in
from tests.e2e.http_client import HttpClient
from tests.e2e.support import register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e


def bearer_tokens(page: Page) -> list[str]:
    """Records the bearer token of every request the page sends to the API."""
    seen: list[str] = []

    def note(request: Request) -> None:
        value = request.headers.get("authorization", "")
        if value.lower().startswith("bearer ") and value[7:] not in seen:
            seen.append(value[7:])

    page.on("request", note)
    return seen


def refused_within(http: HttpClient, path: str, token: str, seconds: float) -> int:
    """The status of ``path`` with ``token`` once it is refused, or the last one seen."""
    deadline = time.monotonic() + seconds
    status = http.get(path, token=token).status
    while status != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = http.get(path, token=token).status
    return status


def test_sign_out_ends_the_session_at_the_api(
    browser: BrowserSession, console_url: str, http: HttpClient
) -> None:
    user = register(http, "console-signout")
    page = browser.new_page()
    tokens = bearer_tokens(page)
    sign_in(page, console_url, user.email, user.password)
    expect(page.locator("#timeline button.tl-item")).to_have_count(2)
    assert tokens, "the console sent no authenticated request"
    token = tokens[-1]
    assert http.get(f"/users/{user.id}", token=token).status == 200

    page.click("#sign-out")
    expect(page.locator("#login-email")).to_be_visible()
    assert refused_within(http, f"/users/{user.id}", token, 2.0) == 401


def test_the_live_panel_shows_the_projectors_position_from_readiness(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    register(http, "console-ready")
    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    expect(page.locator("#live-read-model")).to_have_text(re.compile(r"^\d+$"))
    shown = int(page.locator("#live-read-model").inner_text())
    report = http.root.get("/health/ready").json()
    projector = report["backends"]["query"]["checks"]["projector"]
    # The page read it a moment before this request: never ahead of it.
    assert 0 < shown <= int(projector["position"])
    expect(page.locator("#live-lag")).to_contain_text("behind")


def test_reactivate_through_the_api(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
    e2e_system: SystemProcess,
    admin_token: str,
) -> None:
    user = register(http, "console-reactivate")
    done = http.post(
        f"/users/{user.id}/deactivate", json_body={"reason": "test"}, token=admin_token
    )
    assert done.status == 200, done.describe()
    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(page, console_url, user.id, 2)

    expect(page.locator("#action-activate")).to_be_enabled()
    page.click("#action-activate")
    page.click("#confirm-ok")
    expect(page.locator("#action-result")).to_contain_text("Reactivate: Account reactivated.")
    state = http.get(f"/replay/user/{user.id}/state", token=admin_token).json()["state"]
    assert state["status"] == "active" and state["reactivated_at"], state


def test_a_refused_token_is_refreshed_once_with_the_real_refresh_token(
    browser: BrowserSession, console_url: str, http: HttpClient
) -> None:
    user = register(http, "console-refresh-real")
    page = browser.new_page()
    tokens = bearer_tokens(page)
    refreshes: list[int] = []
    page.on(
        "response",
        lambda response: (
            refreshes.append(response.status) if "/v1/token/refresh" in response.url else None
        ),
    )
    rejected = {"count": 0}

    def history_route(route: Route) -> None:
        # Every history read made with the login's token is refused, as an
        # expired token would be (the page may read it more than once at a
        # time: a live event starts another read).
        if route.request.headers.get("authorization") == f"Bearer {tokens[0]}":
            rejected["count"] += 1
            route.fulfill(status=401, json={"error": "token expired", "code": "UNAUTHENTICATED"})
        else:
            route.continue_()

    page.route(f"**/v1/replay/user/{user.id}/history", history_route)
    sign_in(page, console_url, user.email, user.password)
    expect(page.locator("#timeline button.tl-item")).to_have_count(2)
    assert rejected["count"] >= 1
    assert refreshes == [200], "reads refused together share one refresh"
    # The retried read carried the refreshed token, which the API accepts.
    assert len(tokens) >= 2
    assert http.get(f"/users/{user.id}", token=tokens[-1]).status == 200
