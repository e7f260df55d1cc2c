"""The console with a route another branch is adding, answered by the test for now.

main does not serve ``DELETE /v1/users/{id}`` (erasure, ``[ERASED]``
fields) yet; the console offers it as soon as the served OpenAPI document
lists it. Until it lands, this test answers exactly those requests in the
browser (Playwright's ``page.route``), shaped as the erasure branch answers,
and lets every other request reach the real system. The session and health
routes the console uses are tested on the real system in
``test_console_session_routes.py``.
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
