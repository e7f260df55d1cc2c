"""Login over gRPC against real store, command and query services."""

from __future__ import annotations

import time

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.query.v1 import query_pb2 as q

from query_svc.login import INVALID_CREDENTIALS
from service_kit import metadata
from service_kit.auth import ROLE_ADMIN, ROLE_USER
from tests.auth_support import TEST_TOKENS, service_identity
from tests.integration.query_svc.conftest import (
    ADMIN,
    ADMIN_MD,
    PASSWORD,
    SERVICE_MD,
    Stack,
    bearer,
)

VERIFIER = TEST_TOKENS.verifier()
GATEWAY_IDENTITY = service_identity("gateway")


def from_gateway() -> list[tuple[str, str]]:
    """What the gateway sends: the client's address, and its own service token as proof.

    Made per call (the identity renews its token): a token made at import would
    have expired by the time a long suite reaches these tests.
    """
    return [("x-forwarded-for", "203.0.113.5"), ("x-proxy-authorization", GATEWAY_IDENTITY()[0][1])]


pytestmark = pytest.mark.integration


async def register(stack: Stack, email: str) -> tuple[str, int]:
    r = await stack.commands.Register(
        cmd.RegisterRequest(email=email, password=PASSWORD), timeout=10
    )
    return r.id, r.position


async def login(
    stack: Stack, email: str, password: str, metadata: list[tuple[str, str]] | None = None
) -> q.LoginResponse:
    return await stack.queries.Login(
        q.LoginRequest(email=email, password=password), metadata=metadata or [], timeout=10
    )


async def failed(stack: Stack, email: str, password: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await login(stack, email, password)
    return exc.value


async def test_login_right_after_registering_issues_a_token_and_records_it(
    stack: Stack,
) -> None:
    uid, position = await register(stack, "Carol@Example.com")
    r = await login(
        stack,
        "CAROL@example.com",
        PASSWORD,
        [("x-min-position", str(position)), *from_gateway()],
    )
    assert r.token_type == "Bearer"
    assert r.expires_in == TEST_TOKENS.ttl_seconds
    assert (r.user.id, r.user.email, r.user.role) == (uid, "carol@example.com", ROLE_USER)
    principal = VERIFIER.decode(r.token)
    assert (principal.subject, principal.role) == (uid, ROLE_USER)
    assert principal.session_id == r.session_id and r.refresh_token

    # The token works on the query side, and the login was recorded as an event.
    own = [("authorization", f"Bearer {r.token}")]
    history = await stack.queries.GetLoginHistory(
        q.GetLoginHistoryRequest(id=uid, min_position=await stack.head()), metadata=own, timeout=5
    )
    assert [(x.client_address, x.version) for x in history.logins] == [("203.0.113.5", 2)]
    user = await stack.queries.GetUser(q.GetUserRequest(id=uid), metadata=own, timeout=5)
    assert user.user.login_count == 1


async def test_the_bootstrapped_admin_logs_in_as_admin(stack: Stack) -> None:
    assert stack.command.bootstrap is not None
    await stack.command.bootstrap
    r = await login(
        stack, ADMIN.email, ADMIN.password, [("x-min-position", str(await stack.head()))]
    )
    assert r.user.role == ROLE_ADMIN
    listed = await stack.queries.ListUsers(
        q.ListUsersRequest(), metadata=[("authorization", f"Bearer {r.token}")], timeout=5
    )
    assert ADMIN.email in [u.email for u in listed.users]


async def test_wrong_password_unknown_email_and_deactivated_look_alike(stack: Stack) -> None:
    uid, _ = await register(stack, "dave@example.com")
    gone, _ = await register(stack, "erin@example.com")
    deactivated = await stack.commands.Deactivate(
        cmd.DeactivateRequest(id=gone), metadata=bearer(gone, ROLE_USER), timeout=10
    )
    await stack.queries.GetUser(
        q.GetUserRequest(id=gone, min_position=deactivated.position), metadata=ADMIN_MD, timeout=5
    )
    for email, password in [
        ("dave@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("erin@example.com", PASSWORD),
        ("not-an-email", PASSWORD),
    ]:
        error = await failed(stack, email, password)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            INVALID_CREDENTIALS,
        )
    error = await failed(stack, "", PASSWORD)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("email:")
    assert uid


@pytest.mark.parametrize("query_overrides", [{"LOGIN_MAX_FAILURES_PER_PAIR": "3"}])
async def test_repeated_failures_are_throttled_with_retry_after(stack: Stack) -> None:
    _, position = await register(stack, "frank@example.com")
    await stack.queries.ListUsers(q.ListUsersRequest(min_position=position), metadata=ADMIN_MD)
    for _ in range(3):
        assert (await failed(stack, "frank@example.com", "nope nope")).code() == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    error = await failed(stack, "Frank@example.com", PASSWORD)  # even the right password
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = metadata.get(error.trailing_metadata(), "retry-after")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 900
    assert f"retry in {retry_after} seconds" in (error.details() or "")


@pytest.mark.parametrize("query_overrides", [{"QUERY_WAIT_TIMEOUT_MS": "30000"}])
async def test_an_anonymous_wait_for_a_far_position_is_short(stack: Stack) -> None:
    """A signed-in reader may wait 30 s here; an anonymous login one second at most."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await login(stack, "nobody@example.com", PASSWORD, [("x-min-position", "9" * 18)])
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 10


async def test_a_direct_caller_cannot_pick_its_address(stack: Stack) -> None:
    """Loopback proves nothing: x-forwarded-for without the gateway's token is ignored,
    so a guesser cannot get a fresh budget per spoofed address."""
    uid, position = await register(stack, "spoof@example.com")
    own_md = [("x-min-position", str(position))]
    for n in range(2):
        forged = [*own_md, ("x-forwarded-for", f"198.51.100.{n}")]
        r = await login(stack, "spoof@example.com", PASSWORD, forged)
        with_other_service = [*forged, ("x-proxy-authorization", SERVICE_MD()[0][1])]
        await login(stack, "spoof@example.com", PASSWORD, with_other_service)
    history = await stack.queries.GetLoginHistory(
        q.GetLoginHistoryRequest(id=uid, min_position=await stack.head()),
        metadata=[("authorization", f"Bearer {r.token}")],
        timeout=5,
    )
    # One address (repeat logins from it are coalesced into one event).
    assert [x.client_address for x in history.logins] == ["127.0.0.1"]


async def test_login_succeeds_when_command_svc_is_down(stack: Stack) -> None:
    uid, position = await register(stack, "grace@example.com")
    await stack.command.stop(grace=0)
    r = await login(stack, "grace@example.com", PASSWORD, [("x-min-position", str(position))])
    assert r.user.id == uid
