"""What the console's tests do and read on its pages, in one place.

The element ids are the console's (``gateway/console/*.js``); values are
read as a person sees them (``innerText``) and compared with the API's
answers through :func:`shown`, the console's own rendering rule: absent or
empty reads "—", a redacted secret "secret (redacted)", erased personal
data "erased".
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.http_client import HttpClient
from tests.e2e.support import User, login, register

NOTHING = "—"
MARKERS = {"[REDACTED]": "secret (redacted)", "[ERASED]": "erased"}


def shown(value: Any) -> str:
    """The text the console shows for an API value."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return MARKERS.get(value, value)
    return str(value)


def sign_in(page: Page, console_url: str, email: str, password: str) -> None:
    """Signs in through the form, with the keyboard only (type, Tab, Enter)."""
    page.goto(console_url)
    email_box = page.locator("#login-email")
    expect(email_box).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    expect(page.locator("#login-password")).to_be_focused()
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.locator("#signed-in-as")).to_contain_text(email)


def open_user(page: Page, console_url: str, user_id: str, events: int) -> None:
    """Opens a user's page and waits until its timeline lists ``events`` events."""
    page.goto(f"{console_url}#/users/{user_id}")
    expect(page.locator("#timeline button.tl-item")).to_have_count(events)
    expect(page.locator("#state-replayed")).to_contain_text("replaying")


def displayed_state(page: Page) -> dict[str, tuple[str, bool]]:
    """The state table: field -> (shown value, highlighted as changed)."""
    rows = page.eval_on_selector_all(
        "#state-table tbody tr",
        """rows => rows.map(r => [r.dataset.field, r.querySelector('td.value').innerText.trim(),
                                  r.classList.contains('changed')])""",
    )
    return {field: (value, changed) for field, value, changed in rows}


def displayed_changes(page: Page) -> dict[str, tuple[str, str]]:
    """The compare table: field -> (before, after) as shown."""
    rows = page.eval_on_selector_all(
        "#compare-table tbody tr",
        """rows => rows.map(r => [r.dataset.field, r.querySelector('td.before').innerText.trim(),
                                  r.querySelector('td.after').innerText.trim()])""",
    )
    return {field: (before, after) for field, before, after in rows}


def user_with_history(http: HttpClient, label: str, changes: int = 10) -> tuple[User, str, int]:
    """A user with ``2 * changes + 2`` events or more: (user, token, last position).

    Registration, the login's recorded event, then ``changes`` email
    changes and ``changes`` password changes, alternating (a password
    change keeps the session that made it signed in).
    """
    user = register(http, label)
    token = login(http, user.email, user.password, after=user.position)
    email, password, position = user.email, user.password, user.position
    for n in range(changes):
        email = f"{label}-{n}-{user.id[:8]}@example.com"
        answer = http.put(f"/users/{user.id}/email", json_body={"new_email": email}, token=token)
        assert answer.status == 200, answer.describe()
        new_password = f"{label}-Pass-{n}!"
        answer = http.put(
            f"/users/{user.id}/password",
            json_body={"old_password": password, "new_password": new_password},
            token=token,
        )
        assert answer.status == 200, answer.describe()
        password, position = new_password, answer.json()["position"]
    return User(user.id, email, password, position), token, position
