"""The web console in a real headless Chromium against the real system (issue #17).

Every test runs against ``python -m bootstrap`` (the ``e2e_system`` of
tests/e2e, on embedded defaults and on ClickHouse + Kafka + PostgreSQL) and
checks what the page shows against what the API answers. The ``browser``
fixture fails any test whose page sent a request to a host other than
127.0.0.1, threw, or was refused something by its Content-Security-Policy.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import BrowserSession
from tests.e2e.console.pages import (
    NOTHING,
    displayed_changes,
    displayed_state,
    open_user,
    shown,
    sign_in,
    user_with_history,
)
from tests.e2e.http_client import HttpClient
from tests.e2e.support import login, register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

LIVE_WAIT_MS = 15_000


def check_state_matches_api(
    page: Page, http: HttpClient, token: str, user_id: str, entry: dict[str, object]
) -> None:
    """The state shown for a timeline entry is the API's state-at that version, its changes lit."""
    event = entry["event"]
    assert isinstance(event, dict)
    version = event["version"]
    expect(page.locator("#state-replayed")).to_contain_text(
        f"at version {version} by replaying", timeout=10_000
    )
    expect(page.locator("#ev-version")).to_have_text(str(version))
    expect(page.locator("#ev-position")).to_have_text(str(event["position"]))
    expect(page.locator("#ev-correlation")).to_have_text(shown(event["correlation_id"]))
    answer = http.get(f"/replay/user/{user_id}/state-at?version={version}", token=token)
    assert answer.status == 200, answer.describe()
    expected = answer.json()
    shown_state = displayed_state(page)
    for field, value in expected["state"].items():
        assert shown_state[field][0] == shown(value), (version, field, shown_state[field], value)
    for field, (value, _) in shown_state.items():
        if field not in expected["state"]:
            assert value == NOTHING, (version, field, value)
    changed = {field for field, (_, lit) in shown_state.items() if lit}
    assert changed == set(entry["changed_fields"]) & set(shown_state), (version, changed)  # type: ignore[call-overload]
    expect(page.locator("#events-replayed")).to_have_text(str(expected["events_replayed"]))


def test_user_signs_in_sees_own_account_and_signs_out(
    browser: BrowserSession, console_url: str, http: HttpClient
) -> None:
    user = register(http, "console-self")
    page = browser.new_page()
    page.goto(console_url)
    # A wrong password is refused with the API's error, and nothing else happens.
    page.fill("#login-email", user.email)
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#alert")).to_contain_text("401 UNAUTHENTICATED")
    expect(page.locator("#signed-in-as")).to_have_count(0)

    sign_in(page, console_url, user.email, user.password)
    expect(page.locator("#user-id")).to_have_text(user.id)
    expect(page.locator("#user-email")).to_have_text(user.email)
    # A user sees their own account only: no user list, and #/users leads home.
    expect(page.locator("nav a", has_text="Users")).to_have_count(0)
    page.goto(f"{console_url}#/users")
    expect(page.locator("#user-id")).to_have_text(user.id)
    # The subscription is for admins: the user's page polls and says so.
    expect(page.locator("#live-mode")).to_contain_text("polling")
    # Admin actions are not offered to a user.
    expect(page.locator("#action-deactivate")).to_have_count(0)
    # The token lives in sessionStorage (this tab), never in a cookie.
    assert page.evaluate("document.cookie") == ""
    stored = page.evaluate("sessionStorage.getItem('cqrs-console.session')")
    assert stored and user.id in stored
    browser.screenshot(page, "user-own-account")

    page.click("#sign-out")
    expect(page.locator("#login-email")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cqrs-console.session')") is None
    page.reload()
    expect(page.locator("#login-email")).to_be_visible()


def test_admin_lists_searches_filters_and_pages_users(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
    e2e_system: SystemProcess,
    admin_token: str,
) -> None:
    label = "console-list"
    users = [register(http, label) for _ in range(11)]
    gone = users[-1]
    gone_token = login(http, gone.email, gone.password, after=gone.position)
    answer = http.post(f"/users/{gone.id}/deactivate", json_body={}, token=gone_token)
    assert answer.status == 200, answer.describe()
    position = answer.json()["position"]
    assert http.get(f"/users?min_position={position}", token=admin_token).status == 200

    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    expect(page.locator("#users-table")).to_be_visible()
    browser.screenshot(page, "admin-users")

    # Search by email: exactly the user searched for.
    page.fill("#user-search", users[3].email)
    page.click("#user-apply")
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-user-id", users[3].id)
    expect(page.locator("#users-summary")).to_contain_text("1 user whose email")

    # Filter by status: only deactivated users, the one deactivated among them.
    page.fill("#user-search", "")
    page.select_option("#user-status", "deactivated")
    expect(page.locator(f'#users-table tr[data-user-id="{gone.id}"]')).to_have_count(1)
    statuses = page.locator("#users-table tbody td.status").all_inner_texts()
    assert statuses and set(statuses) == {"deactivated"}, statuses

    # Paging: 10 a page over at least 12 users (11 here and the admin).
    page.select_option("#user-status", "")
    page.select_option("#user-page-size", "10")
    expect(rows).to_have_count(10)
    first_page = page.locator("#users-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.userId)"
    )
    expect(page.locator("#users-prev")).to_be_disabled()
    page.click("#users-next")
    expect(page.locator("#users-summary")).to_contain_text("Page 2")
    second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.userId)")
    assert second_page and not set(second_page) & set(first_page)
    page.click("#users-prev")
    expect(page.locator("#users-summary")).to_contain_text("Page 1")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.userId)") == first_page

    # A row opens the user's page.
    page.fill("#user-search", users[0].email)
    page.click("#user-apply")
    page.click(f'#users-table tr[data-user-id="{users[0].id}"] a')
    expect(page.locator("#user-id")).to_have_text(users[0].id)


def test_timeline_moves_through_states_matching_the_api(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    user, token, _ = user_with_history(http, "console-timeline", changes=10)
    history = http.get(f"/replay/user/{user.id}/history", token=token).json()["entries"]
    assert len(history) >= 20

    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(page, console_url, user.id, len(history))
    browser.screenshot(page, "timeline-latest")
    # The newest point is shown first.
    check_state_matches_api(page, http, token, user.id, history[-1])

    # The list with the keyboard: Home, arrows, End (the focus moves with the selection).
    current = page.locator('#timeline button[aria-current="true"]')
    current.focus()
    page.keyboard.press("Home")
    expect(page.locator("#timeline button.tl-item").first).to_be_focused()
    check_state_matches_api(page, http, token, user.id, history[0])
    # The creation's payload shows the password hash as a redacted secret.
    expect(page.locator("#ev-payload [data-marker=secret]")).to_have_text("secret (redacted)")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    check_state_matches_api(page, http, token, user.id, history[3])

    # The slider with arrow keys.
    page.focus("#scrub")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    check_state_matches_api(page, http, token, user.id, history[-3])

    # A click on the timeline.
    page.click("#timeline button.tl-item >> nth=10")
    check_state_matches_api(page, http, token, user.id, history[10])
    browser.screenshot(page, "timeline-v11")

    # A time between two events shows the state after the earlier one.
    page.fill("#jump-time", history[6]["event"]["timestamp"])
    page.click("#jump-go")
    expect(page.locator("#state-replayed")).to_contain_text(
        f"at {history[6]['event']['timestamp']} by replaying"
    )
    expect(page.locator('#timeline button[aria-current="true"]')).to_have_attribute(
        "data-version", str(history[6]["event"]["version"])
    )
    expect(page.locator("#events-replayed")).to_have_text(str(history[6]["event"]["version"]))


def test_compare_two_points(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
) -> None:
    user, token, _ = user_with_history(http, "console-compare", changes=10)
    history = http.get(f"/replay/user/{user.id}/history", token=token).json()["entries"]
    page = browser.new_page()
    sign_in(page, console_url, user.email, user.password)
    open_user(page, console_url, user.id, len(history) + 1)  # + this sign-in's login event
    history = http.get(f"/replay/user/{user.id}/history", token=token).json()["entries"]

    for first, second in ((0, 4), (2, len(history) - 1)):
        page.select_option("#compare-a", str(first))
        page.select_option("#compare-b", str(second))
        page.click("#compare-run")
        time1 = history[first]["event"]["timestamp"]
        time2 = history[second]["event"]["timestamp"]
        answer = http.get(
            f"/replay/user/{user.id}/compare?time1={time1}&time2={time2}", token=token
        )
        assert answer.status == 200, answer.describe()
        expected = answer.json()
        expect(page.locator("#compare-summary")).to_contain_text(
            f"{expected['change_count']} fields differ between v{first + 1}"
        )
        assert displayed_changes(page) == {
            change["field"]: (shown(change["before"]), shown(change["after"]))
            for change in expected["changes"]
        }
    assert "email" in displayed_changes(page)
    browser.screenshot(page, "compare")


def test_live_event_arrives_for_an_admin_and_for_the_user(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
    e2e_system: SystemProcess,
) -> None:
    user = register(http, "console-live")
    token = login(http, user.email, user.password, after=user.position)
    admin_page = browser.new_page()
    sign_in(admin_page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(admin_page, console_url, user.id, 2)
    expect(admin_page.locator("#live-mode")).to_contain_text("subscribed", timeout=LIVE_WAIT_MS)

    # A change made through the API appears on the admin's page, from the subscription.
    new_email = f"live-{user.id[:8]}@example.com"
    answer = http.put(f"/users/{user.id}/email", json_body={"new_email": new_email}, token=token)
    assert answer.status == 200, answer.describe()
    position, version = answer.json()["position"], answer.json()["version"]
    item = admin_page.locator(f'#live-feed li[data-position="{position}"]')
    expect(item).to_contain_text("user.email.changed", timeout=LIVE_WAIT_MS)
    expect(admin_page.locator(f'#timeline button[data-version="{version}"]')).to_be_visible()
    # The timeline follows the newest point when it was showing the newest.
    expect(admin_page.locator('#timeline button[aria-current="true"]')).to_have_attribute(
        "data-version", str(version)
    )
    expect(admin_page.locator("#state-table tr[data-field=email] td.value")).to_have_text(new_email)
    # The read model's position and lag are shown, and it reaches the new event.
    expect(admin_page.locator("#live-head")).to_have_text(re.compile(r"^\d+$"))
    expect_at_least(admin_page, "#live-head", position)
    expect_at_least(admin_page, "#live-read-model", position)
    expect(admin_page.locator("#live-lag")).to_contain_text("behind")
    browser.screenshot(admin_page, "live-admin")

    # The user's own page polls its stream; a change shows up there too.
    user_page = browser.new_page()
    sign_in(user_page, console_url, new_email, user.password)
    expect(user_page.locator("#live-mode")).to_contain_text("polling", timeout=LIVE_WAIT_MS)
    newer_email = f"live2-{user.id[:8]}@example.com"
    answer = http.put(f"/users/{user.id}/email", json_body={"new_email": newer_email}, token=token)
    assert answer.status == 200, answer.describe()
    position = answer.json()["position"]
    expect(user_page.locator(f'#live-feed li[data-position="{position}"]')).to_contain_text(
        "user.email.changed", timeout=LIVE_WAIT_MS
    )
    browser.screenshot(user_page, "live-user")
    # Deactivation arrives on the admin's page; it ends the user's session, so the
    # user's page goes back to signing in.
    answer = http.post(f"/users/{user.id}/deactivate", json_body={"reason": "live"}, token=token)
    assert answer.status == 200, answer.describe()
    position = answer.json()["position"]
    expect(admin_page.locator(f'#live-feed li[data-position="{position}"]')).to_contain_text(
        "user.deactivated", timeout=LIVE_WAIT_MS
    )
    expect(user_page.locator("#login-email")).to_be_visible(timeout=LIVE_WAIT_MS)


def expect_at_least(page: Page, selector: str, minimum: int) -> None:
    """Waits until the number shown at selector is at least minimum."""
    page.wait_for_function(
        "([selector, minimum]) => Number(document.querySelector(selector)?.textContent) >= minimum",
        arg=[selector, minimum],
        timeout=LIVE_WAIT_MS,
    )


def test_snapshots_list_and_create(
    browser: BrowserSession, console_url: str, http: HttpClient
) -> None:
    user, token, _ = user_with_history(http, "console-snap", changes=2)
    page = browser.new_page()
    sign_in(page, console_url, user.email, user.password)
    events = len(http.get(f"/replay/user/{user.id}/history", token=token).json()["entries"])
    open_user(page, console_url, user.id, events)
    expect(page.locator("#snapshot-newest")).to_have_text("No snapshot yet.")
    expect(page.locator("#snapshot-replayed")).to_have_text(str(events))

    page.click("#snapshot-create")
    expect(page.locator("#snapshot-newest")).to_contain_text(f"version {events},")
    expect(page.locator(f'#snapshot-list li[data-version="{events}"]')).to_have_count(1)
    expect(page.locator("#snapshot-state")).to_contain_text(
        f"from the snapshot at version {events}"
    )
    expect(page.locator("#snapshot-replayed")).to_have_text("0")
    expect(
        page.locator(f'#timeline button[data-version="{events}"] .badge-snapshot')
    ).to_be_visible()
    answer = http.get(f"/snapshots/{user.id}", token=token)
    assert answer.status == 200 and answer.json()["snapshot"]["version"] == events
    browser.screenshot(page, "snapshots")


def test_admin_actions_confirm_and_show_refusals(
    browser: BrowserSession,
    console_url: str,
    http: HttpClient,
    e2e_system: SystemProcess,
    admin_token: str,
) -> None:
    user = register(http, "console-actions")
    page = browser.new_page()
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    open_user(page, console_url, user.id, 1)

    # Actions the API lacks are disabled with a note; those it has are enabled.
    paths = http.root.get("/openapi.json").json()["paths"]
    for action, verb, path in (
        ("deactivate", "post", "/v1/users/{id}/deactivate"),
        ("activate", "post", "/v1/users/{id}/activate"),
        ("reset-password", "put", "/v1/users/{id}/password"),
        ("erase", "delete", "/v1/users/{id}"),
    ):
        button = page.locator(f"#action-{action}")
        if verb in paths.get(path, {}):
            expect(button).to_be_enabled()
        else:
            expect(button).to_be_disabled()
            expect(page.locator(f"#action-{action}-note")).to_contain_text("Not offered")

    # Cancelling (Escape) changes nothing.
    page.click("#action-deactivate")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(page.locator("#action-deactivate")).to_be_focused()
    expect(page.locator("#notice")).to_contain_text("cancelled")

    # A refused action shows the API's error: a password too short to be valid.
    page.click("#action-reset-password")
    page.fill("#confirm-new-password", "short")
    page.click("#confirm-ok")
    refusal = page.locator("#action-result")
    expect(refusal).to_contain_text("Reset password was refused: 400 INVALID_ARGUMENT")
    expect(page.locator("#alert")).to_contain_text("400 INVALID_ARGUMENT")
    browser.screenshot(page, "action-refused")
    assert login(http, user.email, user.password)  # the password did not change

    # A confirmed action is carried out.
    page.click("#action-deactivate")
    page.fill("#confirm-reason", "closed from the console")
    page.click("#confirm-ok")
    expect(refusal).to_contain_text("Deactivate: Account deactivated.")
    expect(page.locator("#user-status")).to_have_text("deactivated", timeout=LIVE_WAIT_MS)
    expect(page.locator("#state-table tr[data-field=deactivation_reason] td.value")).to_have_text(
        "closed from the console", timeout=LIVE_WAIT_MS
    )
    answer = http.get(f"/replay/user/{user.id}/state", token=admin_token)
    assert answer.json()["state"]["status"] == "deactivated", answer.describe()

    # Deactivating again is refused by the API, and the page says why.
    page.click("#action-deactivate")
    page.click("#confirm-ok")
    expect(refusal).to_contain_text("Deactivate was refused: 400")
    browser.screenshot(page, "action-done-and-refused")

    if "post" in paths.get("/v1/users/{id}/activate", {}):
        page.click("#action-activate")
        page.click("#confirm-ok")
        expect(refusal).to_contain_text("Reactivate: Account reactivated.")
        expect(page.locator("#user-status")).to_have_text("active", timeout=LIVE_WAIT_MS)
    if "delete" in paths.get("/v1/users/{id}", {}):
        page.click("#action-erase")
        page.click("#confirm-ok")
        expect(refusal).to_contain_text("Erase personal data: Personal data erased.")
        page.click("#timeline button.tl-item >> nth=0")
        expect(page.locator("#ev-payload [data-marker=erased]").first).to_be_visible()


def test_keyboard_and_narrow_screen(
    browser: BrowserSession, console_url: str, http: HttpClient, e2e_system: SystemProcess
) -> None:
    user, _, _ = user_with_history(http, "console-narrow", changes=3)
    page = browser.new_page(width=360, height=740)
    sign_in(page, console_url, e2e_system.admin_email, e2e_system.admin_password)
    expect(page.locator("#users-table")).to_be_visible()
    assert_fits(page, 360)
    browser.screenshot(page, "narrow-users")

    page.goto(f"{console_url}#/users/{user.id}")
    expect(page.locator("#state-replayed")).to_contain_text("replaying")
    assert_fits(page, 360)
    # Tab order reaches the timeline, and the focused element is visibly outlined.
    page.focus("#scrub")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const e = document.activeElement;"
        " return [e.className, getComputedStyle(e).outlineStyle]; }"
    )
    assert focused[0] == "tl-item" and focused[1] != "none", focused
    page.keyboard.press("Home")
    expect(page.locator("#state-replayed")).to_contain_text("at version 1 by replaying")
    browser.screenshot(page, "narrow-user")


def assert_fits(page: Page, width: int) -> None:
    """Nothing on the page is wider than the screen (no sideways scrolling)."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width}px wide on a {width}px screen"


def test_the_request_recorder_flags_another_host(browser: BrowserSession, console_url: str) -> None:
    """The check that no request leaves 127.0.0.1 can fail: ``localhost`` is another host."""
    page = browser.new_page()
    page.goto(console_url.replace("127.0.0.1", "localhost"))
    expect(page.locator("#login-email")).to_be_visible()
    flagged = browser.foreign_requests()
    assert flagged and all("localhost" in line for line in flagged), flagged
    browser.requests.clear()  # recorded on purpose: not a failure of this test
