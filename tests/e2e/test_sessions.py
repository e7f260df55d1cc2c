"""Sessions and revocation as users and attackers meet them, over HTTP and grpcurl.

A token issued before a password reset, a deactivation or a logout is
refused everywhere (every service, HTTP and gRPC) within a second; a
password change ends every session but the one that made it (which just
proved the old password); an open ``/events/subscribe`` stream ends. Refresh tokens rotate,
and a reused one ends its whole session. Admins reset passwords and
reactivate users; the last active admin stays. Tokens verify with the
published JWKS alone, and a key rotation keeps old tokens valid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from service_kit import keys
from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.http_client import HttpClient
from tests.e2e.support import User, login, register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

UNAUTHENTICATED = 16
WITHIN = 1.0  # seconds a revocation may take to reach every service


def session(http: HttpClient, user: User, *, after: int = 0) -> dict[str, object]:
    """A full login answer (token, refresh token, session id)."""
    headers = {"X-Min-Position": str(after or user.position)}
    answer = http.post(
        "/login", json_body={"email": user.email, "password": user.password}, headers=headers
    )
    assert answer.status == 200, answer.describe()
    body: dict[str, object] = answer.json()
    return body


def token_of(body: dict[str, object]) -> str:
    token = body["token"]
    assert isinstance(token, str)
    return token


def refused_within(probe: Callable[[], int], *, status: int) -> float:
    """Seconds until ``probe()`` answers ``status`` (fails the test after :data:`WITHIN`)."""
    started = time.monotonic()
    while True:
        got = probe()
        elapsed = time.monotonic() - started
        if got == status:
            return elapsed
        assert elapsed < WITHIN, f"still {got} after {elapsed:.2f}s"
        time.sleep(0.02)


def everywhere(
    http: HttpClient, store_http: HttpClient, grpcurl: Grpcurl, system: SystemProcess, user: User
) -> Callable[[str], None]:
    """Checks that ``token`` is refused by every service, over HTTP and gRPC, within a second."""

    def check(token: str) -> None:
        probes: list[Callable[[], int]] = [
            lambda: http.get(f"/users/{user.id}", token=token).status,  # query_svc
            lambda: store_http.get(f"/events/aggregate/{user.id}", token=token).status,
            lambda: store_http.get(f"/replay/user/{user.id}/state", token=token).status,
            lambda: (
                http.put(  # command_svc
                    f"/users/{user.id}/email",
                    json_body={"new_email": f"x-{time.monotonic_ns()}@example.com"},
                    token=token,
                ).status
            ),
        ]
        for probe in probes:
            refused_within(probe, status=401)
        for port, method, data in (
            (system.ports.query_grpc, "cqrs.query.v1.QueryService/GetUser", {"id": user.id}),
            (
                system.ports.store_grpc,
                "cqrs.eventstore.v1.EventStoreService/GetState",
                {"aggregate_id": user.id},
            ),
            (
                system.ports.command_grpc,
                "cqrs.command.v1.CommandService/ChangeEmail",
                {"id": user.id, "new_email": "grpc-x@example.com"},
            ),
        ):
            result = grpcurl.run(port, method, data=data, token=token, check=False)
            assert result.status_code == UNAUTHENTICATED, (method, result.stderr)
            assert "token revoked" in result.stderr, result.stderr

    return check


@pytest.fixture
def refused_everywhere(
    http: HttpClient, store_http: HttpClient, grpcurl: Grpcurl, e2e_system: SystemProcess
) -> Callable[[User, str], None]:
    def check(user: User, token: str) -> None:
        everywhere(http, store_http, grpcurl, e2e_system, user)(token)

    return check


# -- revocation ---------------------------------------------------------------------


def test_a_password_change_revokes_every_other_sessions_tokens_everywhere(
    http: HttpClient, refused_everywhere: Callable[[User, str], None]
) -> None:
    user = register(http, "pw-revoke")
    body = session(http, user)
    this_device, other_device = token_of(body), token_of(session(http, user))
    changed = http.put(
        f"/users/{user.id}/password",
        json_body={"old_password": user.password, "new_password": "AnotherPass123!"},
        token=this_device,
    )
    assert changed.status == 200, changed.describe()
    refused_everywhere(user, other_device)
    # The session that changed the password proved the old one: it stays signed in
    # (ASVS 3.3.3), its token and its refresh token keep working.
    assert http.get(f"/users/{user.id}", token=this_device).status == 200
    refreshed = http.post("/token/refresh", json_body={"refresh_token": body["refresh_token"]})
    assert refreshed.status == 200, refreshed.describe()
    assert http.get(f"/users/{user.id}", token=refreshed.json()["token"]).status == 200
    # A login with the new password works.
    fresh = login(http, user.email, "AnotherPass123!", after=changed.json()["position"])
    assert http.get(f"/users/{user.id}", token=fresh).status == 200


def test_an_admin_who_knows_the_old_password_ends_every_session(
    http: HttpClient, admin_token: str, refused_everywhere: Callable[[User, str], None]
) -> None:
    user = register(http, "pw-admin-change")
    mine = token_of(session(http, user))
    changed = http.put(
        f"/users/{user.id}/password",
        json_body={"old_password": user.password, "new_password": "AnotherPass123!"},
        token=admin_token,
    )
    assert changed.status == 200, changed.describe()
    refused_everywhere(user, mine)


def test_deactivation_revokes_the_users_tokens_everywhere(
    http: HttpClient,
    admin_token: str,
    refused_everywhere: Callable[[User, str], None],
) -> None:
    user = register(http, "deactivated")
    opened = session(http, user)
    token = token_of(opened)
    done = http.post(f"/users/{user.id}/deactivate", json_body={}, token=admin_token)
    assert done.status == 200, done.describe()
    refused_everywhere(user, token)
    # Its refresh token is refused too, and says why, however often it is tried.
    for _ in range(2):
        refused = http.post("/token/refresh", json_body={"refresh_token": opened["refresh_token"]})
        assert refused.status == 401, refused.describe()
        assert "the session has ended" in refused.error, refused.describe()


def test_logout_ends_this_session_only_and_logout_all_ends_every_one(
    http: HttpClient, refused_everywhere: Callable[[User, str], None]
) -> None:
    user = register(http, "logout")
    first, second = session(http, user), session(http, user)
    out = http.post("/logout", json_body={}, token=token_of(first))
    assert out.status == 200, out.describe()
    assert out.json()["sessions_revoked"] == 1
    refused_everywhere(user, token_of(first))
    assert http.get(f"/users/{user.id}", token=token_of(second)).status == 200
    third = session(http, user)
    everything = http.post("/logout", json_body={"all": True}, token=token_of(second))
    assert everything.status == 200, everything.describe()
    refused_everywhere(user, token_of(second))
    refused_everywhere(user, token_of(third))
    # Their refresh tokens are dead too.
    again = http.post("/token/refresh", json_body={"refresh_token": third["refresh_token"]})
    assert again.status == 401, again.describe()
    # The sessions list says what happened to each.
    fourth = session(http, user, after=everything.json()["position"])
    listed = http.get(f"/users/{user.id}/sessions", token=token_of(fourth))
    assert listed.status == 200, listed.describe()
    sessions = {s["id"]: s for s in listed.json()["sessions"]}
    assert sessions[str(first["session_id"])]["status"] == "revoked"
    assert sessions[str(first["session_id"])]["revoked_reason"] == "logout"
    assert sessions[str(third["session_id"])]["status"] == "revoked"
    assert sessions[str(fourth["session_id"])]["status"] == "active"
    assert sessions[str(fourth["session_id"])]["current"] is True


def test_logout_is_post_only_and_needs_a_token(http: HttpClient) -> None:
    assert http.post("/logout", json_body={}).status == 401
    assert http.get("/logout").status == 405


def test_an_open_subscription_ends_when_its_token_is_revoked(
    http: HttpClient, store_http: HttpClient, e2e_system: SystemProcess
) -> None:
    admin = User("", e2e_system.admin_email, e2e_system.admin_password, 1)
    body = session(http, admin, after=1)
    token = token_of(body)
    # From the head (positions are gapless: the count is the head), with a
    # heartbeat a second: the stream is live, not paging a long history.
    head = store_http.get("/events/count", token=token).json()["count"]
    conn = HTTPConnection("127.0.0.1", store_http.port, timeout=10)
    try:
        conn.request(
            "GET",
            f"/events/subscribe?from_position={head}&heartbeat_seconds=1",
            headers={"Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.readline())  # the stream is open and flowing
        out = http.post("/logout", json_body={}, token=token)
        assert out.status == 200, out.describe()
        started = time.monotonic()
        last = b""
        while True:
            line = response.readline()
            if not line:
                break
            last = line
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed < WITHIN + 1.0, elapsed
    assert json.loads(last) == {
        "error": "token revoked: the session was ended (logout)",
        "code": "UNAUTHENTICATED",
    }


# -- refresh tokens ------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(http: HttpClient) -> None:
    user = register(http, "refresh")
    first = session(http, user)
    rotated = http.post("/token/refresh", json_body={"refresh_token": first["refresh_token"]})
    assert rotated.status == 200, rotated.describe()
    body = rotated.json()
    assert body["session_id"] == first["session_id"]
    assert body["refresh_token"] != first["refresh_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert http.get(f"/users/{user.id}", token=body["token"]).status == 200
    # The first refresh token comes back (stolen, or replayed): the whole session ends.
    reused = http.post("/token/refresh", json_body={"refresh_token": first["refresh_token"]})
    assert reused.status == 401, reused.describe()
    assert "already used" in reused.error
    refused_within(lambda: http.get(f"/users/{user.id}", token=body["token"]).status, status=401)
    after = http.post("/token/refresh", json_body={"refresh_token": body["refresh_token"]})
    assert after.status == 401, after.describe()
    garbage = http.post("/token/refresh", json_body={"refresh_token": "nope"})
    assert (garbage.status, garbage.code) == (401, "UNAUTHENTICATED")
    empty = http.post("/token/refresh", json_body={})
    assert empty.status == 400, empty.describe()


def test_refresh_over_grpc(grpcurl: Grpcurl, http: HttpClient, e2e_system: SystemProcess) -> None:
    user = register(http, "grpc-refresh")
    first = grpcurl.call(
        e2e_system.ports.query_grpc,
        "cqrs.query.v1.QueryService/Login",
        {"email": user.email, "password": user.password},
    )
    assert first["refreshToken"] and first["sessionId"]
    again = grpcurl.call(
        e2e_system.ports.query_grpc,
        "cqrs.query.v1.QueryService/RefreshToken",
        {"refreshToken": first["refreshToken"]},
    )
    assert again["sessionId"] == first["sessionId"]
    out = grpcurl.call(
        e2e_system.ports.query_grpc,
        "cqrs.query.v1.QueryService/Logout",
        {},
        token=again["token"],
    )
    assert out["sessionsRevoked"] == 1


def test_sessions_are_the_owners_and_admins_only(http: HttpClient, admin_token: str) -> None:
    owner, other = register(http, "sess-owner"), register(http, "sess-other")
    token = token_of(session(http, owner))
    assert http.get(f"/users/{owner.id}/sessions", token=admin_token).status == 200
    intruder = token_of(session(http, other))
    assert http.get(f"/users/{owner.id}/sessions", token=intruder).status == 403
    assert http.get(f"/users/{owner.id}/sessions").status == 401
    assert http.get(f"/users/{owner.id}/sessions", token=token).json()["count"] == 1


# -- admin -----------------------------------------------------------------------------


def test_an_admin_resets_a_password_without_the_old_one(
    http: HttpClient, admin_token: str, refused_everywhere: Callable[[User, str], None]
) -> None:
    user = register(http, "admin-reset")
    token = token_of(session(http, user))
    # A user still needs the old one.
    own = http.put(
        f"/users/{user.id}/password", json_body={"new_password": "NewPass12345!"}, token=token
    )
    assert (own.status, own.error) == (400, "old_password: is required")
    reset = http.put(
        f"/users/{user.id}/password", json_body={"new_password": "NewPass12345!"}, token=admin_token
    )
    assert reset.status == 200, reset.describe()
    refused_everywhere(user, token)
    login(http, user.email, "NewPass12345!", after=reset.json()["position"])


def test_an_admin_reactivates_a_user(http: HttpClient, admin_token: str) -> None:
    user = register(http, "reactivate")
    gone = http.post(f"/users/{user.id}/deactivate", json_body={}, token=admin_token)
    assert gone.status == 200, gone.describe()
    back = http.post(
        f"/users/{user.id}/activate", json_body={"reason": "appeal"}, token=admin_token
    )
    assert back.status == 200, back.describe()
    assert back.json()["message"] == "User activated successfully"
    token = login(http, user.email, user.password, after=back.json()["position"])
    state = http.get(f"/replay/user/{user.id}/state", token=token).json()["state"]
    assert state["status"] == "active" and state["reactivated_at"]
    history = http.get(f"/replay/user/{user.id}/history", token=token).json()
    assert "user.reactivated" in [e["event"]["event_type"] for e in history["entries"]]
    twice = http.post(f"/users/{user.id}/activate", json_body={}, token=admin_token)
    assert twice.status == 400, twice.describe()
    mine = http.post(f"/users/{user.id}/activate", json_body={}, token=token)
    assert mine.status == 403, mine.describe()


def test_the_last_active_admin_cannot_be_deactivated(
    http: HttpClient, admin_token: str, admin_id: str
) -> None:
    answer = http.post(f"/users/{admin_id}/deactivate", json_body={}, token=admin_token)
    assert (answer.status, answer.code) == (400, "FAILED_PRECONDITION")
    assert "last active admin" in answer.error
    assert http.get("/users", token=admin_token).status == 200


# -- keys ------------------------------------------------------------------------------


class _JwksServer:
    """Serves a JWK Set over HTTP on loopback, as a third party would fetch it."""

    def __init__(self, document: dict[str, object]) -> None:
        self.document = document
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_copy(http: HttpClient) -> Iterator[_JwksServer]:
    published = http.get("/.well-known/jwks.json")
    served = _JwksServer(published.json())
    try:
        yield served
    finally:
        served.close()


def test_the_jwks_is_a_standard_key_set(http: HttpClient) -> None:
    answer = http.get("/.well-known/jwks.json")
    assert answer.status == 200, answer.describe()
    document = answer.json()
    assert set(document) == {"keys"} and document["keys"]
    for key in document["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )


def test_a_token_verifies_with_the_published_key_alone(
    http: HttpClient, jwks_copy: _JwksServer
) -> None:
    user = register(http, "jwks")
    token = token_of(session(http, user))
    client = jwt.PyJWKClient(jwks_copy.url, cache_keys=False, cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"])
    assert (claims["sub"], claims["role"], claims["iss"]) == (user.id, "user", "query_svc")
    # With its key removed from the set (another key left in it), it does not verify.
    jwks_copy.document = {"keys": [keys.generate_signing_key("query_svc").public_jwk()]}
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(jwks_copy.url, cache_keys=False).get_signing_key_from_jwt(token)


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    http: HttpClient, e2e_system: SystemProcess
) -> None:
    user = register(http, "rotate")
    before = token_of(session(http, user))
    old_kid = jwt.get_unverified_header(before)["kid"]
    rotated = subprocess.run(
        [
            sys.executable,
            "-m",
            "service_kit.keys",
            "rotate",
            "--dir",
            str(e2e_system.keys_dir),
            "--signer",
            "query_svc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 5
    after = before
    while jwt.get_unverified_header(after)["kid"] == old_kid:
        assert time.monotonic() < deadline, "the new key was not picked up"
        time.sleep(0.2)
        after = token_of(session(http, user))
    new_kid = jwt.get_unverified_header(after)["kid"]
    published = [k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]]
    assert published[:2] == [new_kid, old_kid]
    # Both verify everywhere: the old until it expires, the new from now on.
    for token in (before, after):
        assert http.get(f"/users/{user.id}", token=token).status == 200
        assert http.get(f"/events/aggregate/{user.id}", token=token).status == 200


def test_admin_and_session_calls_over_grpc(
    grpcurl: Grpcurl, http: HttpClient, e2e_system: SystemProcess, admin_token: str
) -> None:
    """The same rules through grpcurl: admin reset, deactivate, activate, sessions, JWKS."""
    user = register(http, "grpc-admin")
    command, query = e2e_system.ports.command_grpc, e2e_system.ports.query_grpc
    token = token_of(session(http, user))
    reset = grpcurl.call(
        command,
        "cqrs.command.v1.CommandService/ChangePassword",
        {"id": user.id, "newPassword": "GrpcReset12345!"},
        token=admin_token,
    )
    assert reset["message"].startswith("Password reset successfully")
    refused_within(
        lambda: (
            grpcurl.run(
                query,
                "cqrs.query.v1.QueryService/GetUser",
                data={"id": user.id},
                token=token,
                check=False,
            ).status_code
        ),
        status=UNAUTHENTICATED,
    )
    off = grpcurl.call(
        command, "cqrs.command.v1.CommandService/Deactivate", {"id": user.id}, token=admin_token
    )
    back = grpcurl.call(
        command,
        "cqrs.command.v1.CommandService/Activate",
        {"id": user.id, "reason": "grpc"},
        token=admin_token,
    )
    assert int(back["version"]) == int(off["version"]) + 1
    fresh = login(http, user.email, "GrpcReset12345!", after=int(back["position"]))
    listed = grpcurl.call(
        query, "cqrs.query.v1.QueryService/ListSessions", {"id": user.id}, token=fresh
    )
    statuses = sorted(s["status"] for s in listed["sessions"])
    assert statuses == ["active", "revoked"]
    jwks = grpcurl.call(query, "cqrs.query.v1.QueryService/GetJwks", {})
    assert jwks["keys"][0]["alg"] == "EdDSA"
