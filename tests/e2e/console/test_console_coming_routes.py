"""The console with routes other branches are adding, answered by the test for now.

main does not serve ``/health/ready`` (the projector's position), ``POST
/v1/logout``, ``POST /v1/users/{id}/activate``, ``DELETE /v1/users/{id}``
(erasure, ``[ERASED]`` fields) or ``POST /v1/token/refresh`` yet; the console
shows each as soon as the served OpenAPI document lists it. Until they land,
these tests answer exactly those requests in the browser (Playwright's
``page.route``), shaped as the branches adding them answer, and let every
other request reach the real system. When a route lands, its test here is
the one to move onto the real system.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser import BrowserSession
from tests.e2e.console.pages import open_user, sign_in
from tests.e2e.http_client import HttpClient
from tests.e2e.support import register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e


def with_paths(page: Page, extra: dict[str, list[str]]) -> None:
    """Serves the real OpenAPI document with these (path -> verbs) added."""

    def handle(route: Route) -> None:
        document = route.fetch().json()
        for path, verbs in extra.items():
            item = document["paths"].setdefault(path, {})
            for verb in verbs:
                item.setdefault(verb, {"responses": {}})
        route.fulfill(json=document)

    page.route("**/openapi.json", handle)


def answer(calls: list[str], status: int, body: dict[str, Any]) -> Any:
    def handle(route: Route) -> None:
        calls.append(f"{route.request.method} {route.request.url}")
        route.fulfill(status=status, json=body)

    return handle


def test_readiness_and_logout(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    page = browser.new_page()
    logouts: list[str] = []
    with_paths(page, {"/v1/logout": ["post"]})
    page.route("**/v1/logout", answer(logouts, 200, {"message": "ok", "sessions_revoked": 1}))
    report = {
        "status": "degraded",
        "backends": {
            "query": {
                "status": "degraded",
                "ready": True,
                "checks": {
                    "projector": {
                        "status": "degraded",
                        "required": False,
                        "reason": "read model stalled at position 7 for 12.0 s",
                        "position": 7,
                        "head": 9000,
                        "behind": 8993,
                    }
                },
            }
        },
    }
    page.route("**/health/ready", lambda route: route.fulfill(status=200, json=report))
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    expect(page.locator("#live-read-model")).to_have_text("7")
    expect(page.locator("#live-head")).to_have_text("9000")
    expect(page.locator("#live-lag")).to_contain_text("8993 events behind")
    expect(page.locator("#live-lag")).to_contain_text("stalled at position 7")
    browser.screenshot(page, "readiness")

    page.click("#sign-out")
    expect(page.locator("#login-email")).to_be_visible()
    assert len(logouts) == 1, logouts


def test_reactivate_and_erase_when_offered(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    user = register(http, "console-coming")
    page = browser.new_page()
    calls: list[str] = []
    with_paths(page, {"/v1/users/{id}/activate": ["post"], "/v1/users/{id}": ["get", "delete"]})
    page.route(f"**/v1/users/{user.id}/activate", answer(calls, 200, {"id": user.id}))
    erased = {"value": False}

    def user_route(route: Route) -> None:
        if route.request.method == "DELETE":
            calls.append(f"DELETE {route.request.url}")
            erased["value"] = True
            route.fulfill(status=200, json={"id": user.id, "message": "erased"})
        else:
            route.continue_()

    def history_route(route: Route) -> None:
        # After the erasure, personal fields read "[ERASED]", as the erasure branch answers.
        reply = route.fetch().json()
        if erased["value"]:
            for entry in reply["entries"]:
                if "email" in entry["event"]["payload"]:
                    entry["event"]["payload"]["email"] = "[ERASED]"
                entry["state"]["email"] = "[ERASED]"
        route.fulfill(body=json.dumps(reply), content_type="application/json")

    page.route(f"**/v1/users/{user.id}", user_route)
    page.route(f"**/v1/replay/user/{user.id}/history", history_route)
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(page, console_url, user.id, 1)

    expect(page.locator("#action-activate")).to_be_enabled()
    page.click("#action-activate")
    page.click("#confirm-ok")
    expect(page.locator("#action-result")).to_contain_text("Reactivate: Account reactivated.")

    expect(page.locator("#action-erase")).to_be_enabled()
    page.click("#action-erase")
    expect(page.locator("#confirm-question")).to_contain_text("cannot be undone")
    page.click("#confirm-ok")
    expect(page.locator("#action-result")).to_contain_text(
        "Erase personal data: Personal data erased."
    )
    page.click("#timeline button.tl-item >> nth=0")
    expect(page.locator("#ev-payload [data-marker=erased]")).to_have_text("erased")
    expect(page.locator("#ev-payload [data-marker=secret]")).to_have_text("secret (redacted)")
    browser.screenshot(page, "erased")
    assert [c.split(" ")[0] for c in calls] == ["POST", "DELETE"], calls


def test_an_expired_token_is_refreshed_once(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    """With a refresh token from login, a 401 is retried once with the refreshed token."""
    user = register(http, "console-refresh")
    page = browser.new_page()
    with_paths(page, {"/v1/token/refresh": ["post"]})
    refreshed: list[str] = []
    state: dict[str, str] = {}

    def login_route(route: Route) -> None:
        reply = route.fetch().json()
        state["token"] = reply["token"]
        reply["refresh_token"] = "refresh-1"
        route.fulfill(json=reply)

    def refresh_route(route: Route) -> None:
        refreshed.append(route.request.post_data or "")
        route.fulfill(json={"token": state["token"], "token_type": "Bearer", "expires_in": 60})

    rejected = {"count": 0}

    def history_route(route: Route) -> None:
        # The first history read finds the token "expired".
        if rejected["count"] == 0:
            rejected["count"] += 1
            route.fulfill(status=401, json={"error": "token expired", "code": "UNAUTHENTICATED"})
        else:
            route.continue_()

    page.route("**/v1/login", login_route)
    page.route("**/v1/token/refresh", refresh_route)
    page.route(f"**/v1/replay/user/{user.id}/history", history_route)
    sign_in(page, console_url, user.email, user.password)
    expect(page.locator("#timeline button.tl-item")).to_have_count(2)
    assert rejected["count"] == 1
    assert len(refreshed) == 1 and json.loads(refreshed[0]) == {"refresh_token": "refresh-1"}
