"""Who may do what, over HTTP, as the gateway answers it.

Register and login are public; a user's own data needs that user's token
or an admin's; listing users, the global event log and every-user time
travel need an admin. Errors are ``{"error", "code"}`` JSON. The rules are
checked on both profiles: our routes under /v1 and the unprefixed routes
(the seed's wire format on the seed's routes).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from service_kit import keys
from service_kit.auth import (
    ROLE_ADMIN,
    ROLE_SERVICE,
    ROLE_USER,
    Principal,
    TokenSettings,
    TokenSigner,
)
from service_kit.timeconv import utcnow
from tests.e2e.http_client import HttpClient
from tests.e2e.support import User, login, register, unique_email
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

EVER = "time1=2020-01-01T00:00:00Z&time2=2030-01-01T00:00:00Z"
# Routes that act on one user's data ({id} is that user), and a request body
# that is valid for them, so that only the token decides.
OWNER_ROUTES: list[tuple[str, str, dict[str, str] | None]] = [
    ("PUT", "/users/{id}/password", {"old_password": "x" * 8, "new_password": "y" * 8}),
    ("PUT", "/users/{id}/email", {"new_email": "someone-else@example.com"}),
    ("POST", "/users/{id}/deactivate", {}),
    ("GET", "/users/{id}", None),
    ("GET", "/users/{id}/logins", None),
    ("GET", "/events/aggregate/{id}", None),
    ("GET", "/streams/{id}", None),
    ("GET", "/replay/user/{id}/state", None),
    ("GET", "/replay/user/{id}/state-at?version=1", None),
    ("GET", "/replay/user/{id}/history", None),
    ("GET", "/replay/user/{id}/compare?" + EVER, None),
    ("POST", "/snapshots/{id}", None),
    ("GET", "/snapshots/{id}", None),
    ("GET", "/snapshots/{id}/state", None),
]
ADMIN_ROUTES = [
    "/users",
    "/events",
    "/events/count",
    "/events/replay?since=2020-01-01T00:00:00Z",
    "/replay/users/state-at?timestamp=2030-01-01T00:00:00Z",
]


@pytest.fixture(params=["/v1", ""], ids=["v1", "unprefixed"])
def client(request: pytest.FixtureRequest, http: HttpClient) -> HttpClient:
    """The gateway under /v1, then unprefixed: the same rules on both."""
    return http.with_prefix(str(request.param))


@pytest.fixture(scope="module")
def victim(http: HttpClient) -> User:
    return register(http, "victim")


@pytest.fixture(scope="module")
def intruder_token(http: HttpClient) -> str:
    intruder = register(http, "intruder")
    return login(http, intruder.email, intruder.password, after=intruder.position)


@pytest.mark.parametrize(("method", "template", "body"), OWNER_ROUTES)
def test_no_token_is_401(
    client: HttpClient, victim: User, method: str, template: str, body: dict[str, str] | None
) -> None:
    answer = client.request(method, template.format(id=victim.id), json_body=body)
    assert answer.status == 401, answer.describe()
    assert answer.headers["content-type"] == "application/json"
    assert answer.code == "UNAUTHENTICATED"
    assert answer.error == "missing bearer token"
    assert answer.headers["www-authenticate"] == 'Bearer realm="cqrs-users"'


@pytest.mark.parametrize(("method", "template", "body"), OWNER_ROUTES)
def test_another_users_token_is_403(
    *,
    client: HttpClient,
    victim: User,
    intruder_token: str,
    method: str,
    template: str,
    body: dict[str, str] | None,
) -> None:
    answer = client.request(
        method, template.format(id=victim.id), json_body=body, token=intruder_token
    )
    assert answer.status == 403, answer.describe()
    assert answer.code == "PERMISSION_DENIED"


def test_the_victim_was_left_untouched(http: HttpClient, victim: User) -> None:
    # Runs after the 403s: nothing an intruder sent changed the account.
    token = login(http, victim.email, victim.password, after=victim.position)
    events = http.get(f"/events/aggregate/{victim.id}", token=token).json()["events"]
    assert [e["event_type"] for e in events] == ["user.created", "user.login.recorded"]


@pytest.mark.parametrize("path", ADMIN_ROUTES)
def test_admin_routes(client: HttpClient, intruder_token: str, admin_token: str, path: str) -> None:
    anonymous = client.get(path)
    assert anonymous.status == 401, anonymous.describe()
    assert anonymous.code == "UNAUTHENTICATED"
    as_user = client.get(path, token=intruder_token)
    assert as_user.status == 403, as_user.describe()
    assert as_user.code == "PERMISSION_DENIED"
    as_admin = client.get(path, token=admin_token)
    assert as_admin.status == 200, as_admin.describe()


def test_a_user_cannot_list_users_but_sees_itself(client: HttpClient) -> None:
    user = register(client, "lister")
    token = login(client, user.email, user.password, after=user.position)
    listed = client.get("/users", token=token)
    assert listed.status == 403, listed.describe()
    assert listed.json() == {"error": "role 'user' may not do this", "code": "PERMISSION_DENIED"}
    own = client.get(f"/users/{user.id}", token=token)
    assert own.status == 200, own.describe()
    assert own.json()["user"]["email"] == user.email


def test_admin_acts_on_any_user(client: HttpClient, admin_token: str) -> None:
    user = register(client, "managed")
    new_email = unique_email("managed-new")
    changed = client.put(
        f"/users/{user.id}/email", json_body={"new_email": new_email}, token=admin_token
    )
    assert changed.status == 200, changed.describe()
    state = client.get(f"/replay/user/{user.id}/state", token=admin_token)
    assert state.json()["state"]["email"] == new_email


def _signer(system: SystemProcess, name: str, ttl: int = 900) -> TokenSigner:
    """A signer with the system's own key of ``name`` (read from its data folder)."""
    return TokenSettings(keys_dir=system.keys_dir, ttl_seconds=ttl).signer(name)


def test_bad_and_expired_tokens_are_401(
    client: HttpClient, e2e_system: SystemProcess, admin_id: str
) -> None:
    path = "/users"
    garbage = client.get(path, token="not-a-jwt")
    assert (garbage.status, garbage.error) == (401, "invalid token")
    # An admin token signed with a key the system does not trust is worth nothing.
    stranger = keys.generate_signing_key(keys.USER_TOKEN_ISSUER)
    forged = TokenSigner(lambda: stranger).issue(
        Principal(subject=admin_id, email="", role=ROLE_ADMIN), now=utcnow()
    )[0]
    answer = client.get(path, token=forged)
    assert (answer.status, answer.error) == (401, "invalid token")
    # Nor is an admin token signed by a service that holds a trusted key of its own.
    by_gateway = _signer(e2e_system, "gateway").issue(
        Principal(subject=admin_id, email="", role=ROLE_ADMIN), now=utcnow()
    )[0]
    answer = client.get(path, token=by_gateway)
    assert (answer.status, answer.error) == (401, "invalid token")
    # ...nor a service token claiming another service's name.
    impostor = _signer(e2e_system, "gateway").issue(
        Principal(subject="command_svc", email="", role=ROLE_SERVICE), now=utcnow()
    )[0]
    answer = client.get(path, token=impostor)
    assert (answer.status, answer.error) == (401, "invalid token")
    expired = _signer(e2e_system, keys.USER_TOKEN_ISSUER, ttl=60).issue(
        Principal(subject=admin_id, email="", role=ROLE_ADMIN), now=utcnow() - timedelta(hours=2)
    )[0]
    answer = client.get(path, token=expired)
    assert (answer.status, answer.error) == (401, "token expired")
    not_bearer = client.get(path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert not_bearer.status == 401, not_bearer.describe()


def test_a_token_for_a_user_that_does_not_exist_sees_nothing(
    client: HttpClient, e2e_system: SystemProcess, victim: User
) -> None:
    ghost = _signer(e2e_system, keys.USER_TOKEN_ISSUER).issue(
        Principal(subject=str(uuid.uuid4()), email="", role=ROLE_USER), now=utcnow()
    )[0]
    answer = client.get(f"/events/aggregate/{victim.id}", token=ghost)
    assert answer.status == 403, answer.describe()


def test_a_deactivated_user_cannot_log_in(http: HttpClient, admin_token: str) -> None:
    user = register(http, "leaving")
    token = login(http, user.email, user.password, after=user.position)
    done = http.post(f"/users/{user.id}/deactivate", json_body={"reason": "e2e"}, token=token)
    assert done.status == 200, done.describe()
    assert done.json()["message"] == "User deactivated successfully"
    position = str(done.json()["position"])
    refused = http.post(
        "/login",
        json_body={"email": user.email, "password": user.password},
        headers={"X-Min-Position": position},
    )
    wrong = http.post("/login", json_body={"email": user.email, "password": "not-the-password"})
    # The same answer as a wrong password: nothing tells which accounts exist.
    assert refused.status == wrong.status == 401, refused.describe()
    same = {"error": "invalid email or password", "code": "UNAUTHENTICATED"}
    assert refused.json() == wrong.json() == same
    # The old token can no longer do anything (the deactivation revoked it) ...
    again = http.put(
        f"/users/{user.id}/email", json_body={"new_email": unique_email("x")}, token=token
    )
    assert (again.status, again.code) == (401, "UNAUTHENTICATED"), again.describe()
    assert again.error == "token revoked: the account was deactivated"
    # ... and the account takes no command, whoever asks.
    by_admin = http.put(
        f"/users/{user.id}/email", json_body={"new_email": unique_email("x")}, token=admin_token
    )
    assert (by_admin.status, by_admin.code) == (400, "FAILED_PRECONDITION"), by_admin.describe()


def test_repeated_failed_logins_from_one_address_are_429_but_the_owner_elsewhere_gets_in(
    http: HttpClient,
) -> None:
    user = register(http, "guessed")
    # From an address of its own, so other tests' logins from 127.0.0.1 are unaffected.
    source = "127.0.0.21"
    statuses = []
    for _ in range(6):
        answer = http.post(
            "/login", json_body={"email": user.email, "password": "wrong-guess"}, source=source
        )
        statuses.append(answer.status)
    assert statuses == [401] * 5 + [429]
    assert answer.code == "RESOURCE_EXHAUSTED"
    assert answer.headers["retry-after"].isdigit()
    assert 0 < int(answer.headers["retry-after"]) <= 900
    right = http.post(
        "/login", json_body={"email": user.email, "password": user.password}, source=source
    )
    assert right.status == 429, right.describe()  # even the right password, from there
    # The owner at another address is not locked out by someone else's guesses.
    right = http.post(
        "/login", json_body={"email": user.email, "password": user.password}, source="127.0.0.22"
    )
    assert right.status == 200, right.describe()
