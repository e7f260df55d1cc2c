"""The console's erasure, on the real ``DELETE /v1/users/{id}`` route.

The admin erases a user from the console: the page asks for confirmation
(the erasure cannot be undone), reports it, and the user's history then
shows the personal fields as erased and the secrets as redacted, as the API
answers them (``[ERASED]``, ``[REDACTED]``).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import BrowserSession
from tests.e2e.console.pages import open_user, sign_in
from tests.e2e.http_client import HttpClient
from tests.e2e.support import register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e


def test_erase_from_the_console(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
    e2e_system: SystemProcess,
    admin_token: str,
) -> None:
    user = register(http, "console-erase")
    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(page, console_url, user.id, 1)

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

    # The page showed what the API holds: the address is gone from the user's history.
    history = http.get(f"/replay/user/{user.id}/history", token=admin_token)
    assert history.status == 200, history.describe()
    assert user.email not in history.body.decode()
    assert history.json()["entries"][0]["event"]["payload"]["email"] == "[ERASED]"
