"""QueryService reads over gRPC: read-your-writes, paging, access control, errors."""

from __future__ import annotations

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.common.v1 import user_status_pb2 as status_pb
from cqrs.query.v1 import query_pb2 as q

import domain
from service_kit.auth import ROLE_USER
from tests.integration.query_svc.conftest import ADMIN_MD, PASSWORD, SERVICE_MD, Stack, bearer

pytestmark = pytest.mark.integration


async def register(stack: Stack, email: str) -> tuple[str, int]:
    """A user registered through command_svc: (id, position of user.created)."""
    r = await stack.commands.Register(
        cmd.RegisterRequest(email=email, password=PASSWORD), timeout=10
    )
    return r.id, r.position


async def expect(code: grpc.StatusCode, call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call  # type: ignore[misc]
    assert exc.value.code() == code, exc.value.details()
    return exc.value.details() or ""


async def test_a_new_user_is_readable_at_once_with_min_position(stack: Stack) -> None:
    uid, position = await register(stack, "Fresh@Example.com")
    r = await stack.queries.GetUser(
        q.GetUserRequest(id=uid, min_position=position), metadata=ADMIN_MD, timeout=5
    )
    assert (r.user.id, r.user.email, r.user.status) == (
        uid,
        "fresh@example.com",
        status_pb.USER_STATUS_ACTIVE,
    )
    assert r.user.version == 1
    assert not r.user.HasField("last_login_at") and not r.user.HasField("deactivated_at")


async def test_changes_are_readable_at_once_via_metadata(stack: Stack) -> None:
    uid, _ = await register(stack, "mover@example.com")
    own = bearer(uid, ROLE_USER, "mover@example.com")
    changed = await stack.commands.ChangeEmail(
        cmd.ChangeEmailRequest(id=uid, new_email="moved@example.com"), metadata=own, timeout=10
    )
    r = await stack.queries.GetUser(
        q.GetUserRequest(id=uid),
        metadata=[*own, ("x-min-position", str(changed.position))],
        timeout=5,
    )
    assert (r.user.email, r.user.version) == ("moved@example.com", 2)
    gone = await stack.commands.Deactivate(
        cmd.DeactivateRequest(id=uid, reason="bye"), metadata=own, timeout=10
    )
    r = await stack.queries.GetUser(
        q.GetUserRequest(id=uid, min_position=gone.position), metadata=ADMIN_MD, timeout=5
    )
    assert r.user.status == status_pb.USER_STATUS_DEACTIVATED
    assert r.user.HasField("deactivated_at")
    assert r.user.version == 3


@pytest.mark.parametrize("query_overrides", [{"QUERY_WAIT_TIMEOUT_MS": "200"}])
async def test_a_position_not_reached_in_time_is_unavailable(stack: Stack) -> None:
    uid, position = await register(stack, "later@example.com")
    details = await expect(
        grpc.StatusCode.UNAVAILABLE,
        stack.queries.GetUser(
            q.GetUserRequest(id=uid, min_position=position + 1000), metadata=ADMIN_MD, timeout=5
        ),
    )
    assert f"not yet {position + 1000}" in details
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stack.queries.GetUser(
            q.GetUserRequest(id=uid), metadata=[*ADMIN_MD, ("x-min-position", "soon")], timeout=5
        ),
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stack.queries.ListUsers(q.ListUsersRequest(min_position=-1), metadata=ADMIN_MD, timeout=5),
    )


async def test_list_users_pages_in_registration_order_and_filters(
    stack: Stack, password_hash: str
) -> None:
    ids = []
    for i in range(7):
        uid, _ = await stack.feeder.register(f"page{i}@example.com", password_hash=password_hash)
        ids.append(uid)
    await stack.feeder.run(ids[3], [domain.Deactivate("test")])
    head = await stack.head()
    seen: list[q.User] = []
    token = ""
    pages = 0
    while True:
        r = await stack.queries.ListUsers(
            q.ListUsersRequest(page_size=3, page_token=token, min_position=head),
            metadata=ADMIN_MD,
            timeout=5,
        )
        assert r.count == len(r.users) <= 3
        seen.extend(r.users)
        pages += 1
        token = r.next_page_token
        if not token:
            break
    mine = [u.id for u in seen if u.id in ids]
    assert mine == ids
    assert pages >= 3
    created = [(u.created_at.seconds, u.created_at.nanos, u.id) for u in seen]
    assert created == sorted(created)

    active = await stack.queries.ListUsers(
        q.ListUsersRequest(status=status_pb.USER_STATUS_DEACTIVATED), metadata=ADMIN_MD, timeout=5
    )
    assert [u.id for u in active.users] == [ids[3]]
    assert active.next_page_token == ""

    first = await stack.queries.ListUsers(
        q.ListUsersRequest(page_size=1, status=status_pb.USER_STATUS_ACTIVE),
        metadata=ADMIN_MD,
        timeout=5,
    )
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stack.queries.ListUsers(
            q.ListUsersRequest(page_token=first.next_page_token), metadata=ADMIN_MD, timeout=5
        ),
    )
    assert details.startswith("page_token:")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (q.ListUsersRequest(page_size=1001), "page_size"),
        (q.ListUsersRequest(page_size=-1), "page_size"),
        (q.ListUsersRequest(status=9), "status"),  # type: ignore[arg-type]
        (q.ListUsersRequest(page_token="garbage"), "page_token"),
    ],
)
async def test_bad_list_requests_name_the_field(
    stack: Stack, request_: q.ListUsersRequest, field: str
) -> None:
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stack.queries.ListUsers(request_, metadata=ADMIN_MD, timeout=5),
    )
    assert details.startswith(f"{field}:")


async def test_access_control(stack: Stack) -> None:
    alice, position = await register(stack, "alice@example.com")
    bob, _ = await register(stack, "bob@example.com")
    as_alice = bearer(alice, ROLE_USER, "alice@example.com")
    request = q.GetUserRequest(id=alice, min_position=position)

    await expect(grpc.StatusCode.UNAUTHENTICATED, stack.queries.GetUser(request, timeout=5))
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        stack.queries.GetUser(request, metadata=[("authorization", "Bearer nope")], timeout=5),
    )
    assert (await stack.queries.GetUser(request, metadata=as_alice, timeout=5)).user.id == alice
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        stack.queries.GetUser(q.GetUserRequest(id=bob), metadata=as_alice, timeout=5),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        stack.queries.GetLoginHistory(
            q.GetLoginHistoryRequest(id=bob), metadata=as_alice, timeout=5
        ),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        stack.queries.ListUsers(q.ListUsersRequest(), metadata=as_alice, timeout=5),
    )
    await expect(grpc.StatusCode.UNAUTHENTICATED, stack.queries.ListUsers(q.ListUsersRequest()))
    await stack.queries.ListUsers(q.ListUsersRequest(), metadata=SERVICE_MD(), timeout=5)
    await stack.queries.GetUser(q.GetUserRequest(id=bob), metadata=ADMIN_MD, timeout=5)


async def test_unknown_and_malformed_ids(stack: Stack) -> None:
    missing = "5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
    details = await expect(
        grpc.StatusCode.NOT_FOUND,
        stack.queries.GetUser(q.GetUserRequest(id=missing), metadata=ADMIN_MD, timeout=5),
    )
    assert missing in details
    await expect(
        grpc.StatusCode.NOT_FOUND,
        stack.queries.GetLoginHistory(
            q.GetLoginHistoryRequest(id=missing), metadata=ADMIN_MD, timeout=5
        ),
    )
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stack.queries.GetUser(q.GetUserRequest(id="not-a-uuid"), metadata=ADMIN_MD, timeout=5),
    )
    assert details.startswith("id:")


async def test_login_history_is_newest_first_and_paged(stack: Stack, password_hash: str) -> None:
    uid, _ = await stack.feeder.register("often@example.com", password_hash=password_hash)
    for i in range(5):
        await stack.feeder.run(uid, [domain.RecordLogin(f"192.0.2.{i}")])
    head = await stack.head()
    got: list[q.LoginRecord] = []
    token = ""
    while True:
        r = await stack.queries.GetLoginHistory(
            q.GetLoginHistoryRequest(id=uid, page_size=2, page_token=token, min_position=head),
            metadata=ADMIN_MD,
            timeout=5,
        )
        assert r.id == uid and r.count == len(r.logins)
        got.extend(r.logins)
        token = r.next_page_token
        if not token:
            break
    assert [x.client_address for x in got] == [f"192.0.2.{i}" for i in reversed(range(5))]
    assert [x.version for x in got] == [6, 5, 4, 3, 2]
    user = await stack.queries.GetUser(q.GetUserRequest(id=uid), metadata=ADMIN_MD, timeout=5)
    assert user.user.login_count == 5
    assert user.user.last_login_at == got[0].login_at


async def test_no_response_carries_a_password_hash(stack: Stack) -> None:
    uid, position = await register(stack, "secret@example.com")
    login = await stack.queries.Login(
        q.LoginRequest(email="secret@example.com", password=PASSWORD),
        metadata=[("x-min-position", str(position))],
        timeout=10,
    )
    listed = await stack.queries.ListUsers(q.ListUsersRequest(), metadata=ADMIN_MD, timeout=5)
    one = await stack.queries.GetUser(q.GetUserRequest(id=uid), metadata=ADMIN_MD, timeout=5)
    for message in (login, listed, one):
        raw = message.SerializeToString()
        assert b"$2b$" not in raw and b"password" not in raw
