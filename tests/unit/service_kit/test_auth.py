"""service_kit.auth: tokens, service identity, and every interceptor branch.

The interceptor is exercised through a real grpc.aio server on 127.0.0.1:0
serving a tiny generic service, called by a real grpc.aio client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
from cqrs.command.v1 import command_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import service_kit.auth as auth_module
from service_kit.auth import (
    ROLE_ADMIN,
    ROLE_SERVICE,
    ROLE_USER,
    Access,
    AuthInterceptor,
    Principal,
    TokenCodec,
    bearer_token,
    current_principal,
    service_metadata,
)
from service_kit.errors import ServiceError
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit

SECRET = "s" * 32
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"


# -- TokenCodec -------------------------------------------------------------------


def test_issue_then_decode_round_trips_every_claim() -> None:
    codec = TokenCodec(SECRET, ttl_seconds=600)
    principal = Principal(subject=ALICE, email="a@example.com", role=ROLE_USER)
    token, expires_in = codec.issue(principal, now=datetime.now(UTC))
    assert expires_in == 600
    assert codec.decode(token) == principal
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == claims["user_id"] == ALICE
    assert claims["email"] == "a@example.com"
    assert claims["role"] == ROLE_USER
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_has_its_own_jti() -> None:
    codec = TokenCodec(SECRET)
    p = Principal(ALICE, "a@example.com", ROLE_USER)
    now = datetime.now(UTC)
    first, second = codec.issue(p, now=now)[0], codec.issue(p, now=now)[0]
    assert (
        jwt.decode(first, SECRET, algorithms=["HS256"])["jti"]
        != jwt.decode(second, SECRET, algorithms=["HS256"])["jti"]
    )


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_short_secret_is_a_settings_error_naming_jwt_secret(secret: str) -> None:
    with pytest.raises(SettingsError, match=r"^JWT_SECRET"):
        TokenCodec(secret)


def test_secret_length_counts_bytes_not_characters() -> None:
    TokenCodec("é" * 16)  # 32 UTF-8 bytes
    with pytest.raises(SettingsError):
        TokenCodec("é" * 15 + "a")  # 31 bytes


def test_repr_never_shows_the_secret() -> None:
    assert SECRET not in repr(TokenCodec(SECRET))


def test_from_env_reads_secret_and_ttl() -> None:
    codec = TokenCodec.from_env({"JWT_SECRET": SECRET, "JWT_TTL_SECONDS": "120"})
    assert codec.ttl_seconds == 120
    assert TokenCodec.from_env({"JWT_SECRET": SECRET}).ttl_seconds == 3600


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "JWT_SECRET"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_SECRET": SECRET, "JWT_TTL_SECONDS": "abc"}, "JWT_TTL_SECONDS"),
        ({"JWT_SECRET": SECRET, "JWT_TTL_SECONDS": "0"}, "JWT_TTL_SECONDS"),
    ],
)
def test_from_env_names_the_bad_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}"):
        TokenCodec.from_env(env)


def test_issue_refuses_unknown_role_and_empty_subject() -> None:
    codec = TokenCodec(SECRET)
    with pytest.raises(ValueError, match="role"):
        codec.issue(Principal(ALICE, "", "root"), now=NOW)
    with pytest.raises(ValueError, match="subject"):
        codec.issue(Principal("", "", ROLE_USER), now=NOW)


def _unauthenticated(codec: TokenCodec, token: str) -> str:
    with pytest.raises(ServiceError) as info:
        codec.decode(token)
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    return info.value.message


def test_decode_refuses_missing_expired_forged_and_malformed_tokens() -> None:
    codec = TokenCodec(SECRET, ttl_seconds=60)
    p = Principal(ALICE, "a@example.com", ROLE_USER)
    assert "missing" in _unauthenticated(codec, "")
    expired, _ = codec.issue(p, now=datetime.now(UTC) - timedelta(minutes=5))
    assert "expired" in _unauthenticated(codec, expired)
    forged, _ = TokenCodec("o" * 32).issue(p, now=datetime.now(UTC))
    assert _unauthenticated(codec, forged) == "invalid token"
    assert _unauthenticated(codec, "not.a.jwt") == "invalid token"
    header, payload, signature = codec.issue(p, now=datetime.now(UTC))[0].split(".")
    assert _unauthenticated(codec, f"{header}.{payload}x.{signature}") == "invalid token"


def _signed(claims: dict[str, Any], *, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, SECRET if algorithm != "none" else None, algorithm=algorithm)


@pytest.mark.parametrize(
    "claims",
    [
        {"role": ROLE_USER, "email": ""},  # no sub
        {"sub": "", "role": ROLE_USER},  # empty sub
        {"sub": ALICE, "role": "root"},  # unknown role
        {"sub": ALICE},  # no role
        {"sub": ALICE, "role": ROLE_USER, "email": 7},  # email not a string
    ],
)
def test_decode_refuses_tokens_with_bad_claims(claims: dict[str, Any]) -> None:
    now = int(datetime.now(UTC).timestamp())
    token = _signed({"iat": now, "exp": now + 60, **claims})
    assert _unauthenticated(TokenCodec(SECRET), token) == "invalid token"


def test_decode_accepts_a_token_issued_slightly_in_the_future() -> None:
    codec = TokenCodec(SECRET)
    p = Principal(ALICE, "", ROLE_USER)
    token, _ = codec.issue(p, now=datetime.now(UTC) + timedelta(seconds=20))
    assert codec.decode(token) == p


def test_decode_refuses_unsigned_and_exp_less_tokens() -> None:
    now = int(datetime.now(UTC).timestamp())
    codec = TokenCodec(SECRET)
    unsigned = _signed(
        {"sub": ALICE, "role": ROLE_ADMIN, "iat": now, "exp": now + 60}, algorithm="none"
    )
    assert _unauthenticated(codec, unsigned) == "invalid token"
    no_exp = _signed({"sub": ALICE, "role": ROLE_ADMIN, "iat": now})
    assert _unauthenticated(codec, no_exp) == "invalid token"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Basic abc", ""),
        ("abc", ""),
        ("", ""),
    ],
)
def test_bearer_token_parsing(header: str, token: str) -> None:
    assert bearer_token([("authorization", header)] if header else []) == token


# -- service identity ------------------------------------------------------------


def test_service_metadata_is_a_service_token_reused_until_near_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = TokenCodec(SECRET, ttl_seconds=100)
    clock = [datetime.now(UTC)]
    monkeypatch.setattr(auth_module, "utcnow", lambda: clock[0])
    current = service_metadata(codec, "command_svc")
    [(key, value)] = current()
    assert key == "authorization"
    assert value.startswith("Bearer ")
    assert codec.decode(value.removeprefix("Bearer ")) == Principal("command_svc", "", ROLE_SERVICE)
    clock[0] += timedelta(seconds=79)  # 21 s left: more than a fifth of 100 s
    assert current() == [(key, value)]
    clock[0] += timedelta(seconds=2)  # 19 s left: re-issued
    [(_, renewed)] = current()
    assert renewed != value
    claims = jwt.decode(renewed.removeprefix("Bearer "), options={"verify_signature": False})
    assert claims["iat"] == int(clock[0].timestamp())


# -- Access ------------------------------------------------------------------------


def test_access_constants_and_owner() -> None:
    assert Access.owner("id") == Access("owner", "id")
    assert Access.PUBLIC != Access.ADMIN
    with pytest.raises(ValueError):
        Access.owner("")


@pytest.mark.parametrize(
    ("access", "role", "allowed"),
    [
        (Access.ADMIN, ROLE_USER, False),
        (Access.ADMIN, ROLE_ADMIN, True),
        (Access.ADMIN, ROLE_SERVICE, True),
        (Access.SERVICE, ROLE_USER, False),
        (Access.SERVICE, ROLE_ADMIN, False),
        (Access.SERVICE, ROLE_SERVICE, True),
        (Access.AUTHENTICATED, ROLE_USER, True),
        (Access.owner("id"), ROLE_USER, True),
    ],
)
def test_role_allows(access: Access, role: str, allowed: bool) -> None:
    assert access.role_allows(Principal("x", "", role)) is allowed


# -- the interceptor through a real server ---------------------------------------

Req = pb.ChangeEmailRequest
_SER = Req.SerializeToString
_DES = Req.FromString


def _echo_principal(request: Req) -> Req:
    p = current_principal()
    return Req(id=p.subject if p else "anonymous", new_email=p.role if p else "")


async def _unary(request: Req, context: Any) -> Req:
    return _echo_principal(request)


async def _stream_gen(request: Req, context: Any) -> AsyncIterator[Req]:
    for _ in range(2):
        yield _echo_principal(request)


async def _stream_write(request: Req, context: Any) -> None:
    await context.write(_echo_principal(request))


async def _client_stream(requests: AsyncIterator[Req], context: Any) -> Req:
    async for _ in requests:
        pass
    return _echo_principal(Req())


_HANDLERS = {
    name: grpc.unary_unary_rpc_method_handler(_unary, _DES, _SER)
    for name in ("Public", "Authenticated", "Admin", "Service", "Owner", "Unlisted")
}
_HANDLERS["OwnerStream"] = grpc.unary_stream_rpc_method_handler(_stream_gen, _DES, _SER)
_HANDLERS["OwnerWrite"] = grpc.unary_stream_rpc_method_handler(_stream_write, _DES, _SER)
_HANDLERS["OwnerClientStream"] = grpc.stream_unary_rpc_method_handler(_client_stream, _DES, _SER)

POLICIES = {
    "/test.Echo/Public": Access.PUBLIC,
    "/test.Echo/Authenticated": Access.AUTHENTICATED,
    "/test.Echo/Admin": Access.ADMIN,
    "/test.Echo/Service": Access.SERVICE,
    "/test.Echo/Owner": Access.owner("id"),
    "/test.Echo/OwnerStream": Access.owner("id"),
    "/test.Echo/OwnerWrite": Access.owner("id"),
    "/test.Echo/OwnerClientStream": Access.owner("id"),
}


def _add(servicer: object, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", _HANDLERS),))


CODEC = TokenCodec(SECRET)


def _token(subject: str, role: str) -> list[tuple[str, str]]:
    token, _ = CODEC.issue(Principal(subject, f"{subject}@x.io", role), now=datetime.now(UTC))
    return [("authorization", f"Bearer {token}")]


USER = _token(ALICE, ROLE_USER)
ADMIN = _token(BOB, ROLE_ADMIN)
SERVICE = _token("query_svc", ROLE_SERVICE)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(
        "127.0.0.1:0",
        [Registration("test.Echo", _add, object())],
        interceptors=[AuthInterceptor(CODEC, POLICIES)],
    )
    yield running
    await running.stop(0)


@pytest.fixture(scope="module")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


async def _call(
    channel: grpc.aio.Channel, name: str, md: list[tuple[str, str]] | None, target: str = ALICE
) -> Req:
    call = channel.unary_unary(
        f"/test.Echo/{name}", request_serializer=_SER, response_deserializer=_DES
    )
    response: Req = await call(Req(id=target), metadata=md, timeout=5)
    return response


async def _status(
    channel: grpc.aio.Channel, name: str, md: list[tuple[str, str]] | None, target: str = ALICE
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, name, md, target)
    return info.value.code(), info.value.details() or ""


async def test_public_method_needs_no_token(channel: grpc.aio.Channel) -> None:
    assert (await _call(channel, "Public", None)).id == "anonymous"


async def test_public_method_sees_a_valid_token_and_ignores_a_bad_one(
    channel: grpc.aio.Channel,
) -> None:
    assert (await _call(channel, "Public", USER)).id == ALICE
    bad = [("authorization", "Bearer garbage")]
    assert (await _call(channel, "Public", bad)).id == "anonymous"


@pytest.mark.parametrize("name", ["Authenticated", "Admin", "Service", "Owner"])
async def test_protected_methods_without_token_are_unauthenticated(
    channel: grpc.aio.Channel, name: str
) -> None:
    code, details = await _status(channel, name, None)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in details


async def test_invalid_and_expired_tokens_are_unauthenticated(channel: grpc.aio.Channel) -> None:
    code, details = await _status(channel, "Admin", [("authorization", "Bearer nope")])
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid token")
    old, _ = CODEC.issue(Principal(BOB, "", ROLE_ADMIN), now=datetime.now(UTC) - timedelta(hours=2))
    code, details = await _status(channel, "Admin", [("authorization", f"Bearer {old}")])
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")
    code, _ = await _status(channel, "Admin", [("authorization", "Basic dXNlcjpwdw==")])
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_authenticated_accepts_any_valid_token(channel: grpc.aio.Channel) -> None:
    assert (await _call(channel, "Authenticated", USER)).new_email == ROLE_USER


async def test_admin_method_allows_admin_and_service_only(channel: grpc.aio.Channel) -> None:
    code, _ = await _status(channel, "Admin", USER)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert (await _call(channel, "Admin", ADMIN)).new_email == ROLE_ADMIN
    assert (await _call(channel, "Admin", SERVICE)).new_email == ROLE_SERVICE


async def test_service_method_allows_services_only(channel: grpc.aio.Channel) -> None:
    for md in (USER, ADMIN):
        code, _ = await _status(channel, "Service", md)
        assert code == grpc.StatusCode.PERMISSION_DENIED
    response = await _call(channel, "Service", SERVICE)
    assert (response.id, response.new_email) == ("query_svc", ROLE_SERVICE)


async def test_owner_method_allows_the_owner_admins_and_services(
    channel: grpc.aio.Channel,
) -> None:
    assert (await _call(channel, "Owner", USER, ALICE)).id == ALICE
    code, details = await _status(channel, "Owner", USER, BOB)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details.startswith("id:")
    code, _ = await _status(channel, "Owner", USER, "")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert (await _call(channel, "Owner", ADMIN, ALICE)).id == BOB
    assert (await _call(channel, "Owner", SERVICE, ALICE)).id == "query_svc"


async def test_concurrent_owner_calls_are_each_judged_by_their_own_token(
    channel: grpc.aio.Channel,
) -> None:
    """One wrapper serves every call of a method; the caller is per call."""
    carol = str(uuid.uuid4())
    tokens = {ALICE: USER, carol: _token(carol, ROLE_USER)}

    async def attempt(caller: str, target: str) -> bool:
        try:
            await _call(channel, "Owner", tokens[caller], target)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
            return False
        return True

    pairs = [(c, t) for c in tokens for t in tokens] * 25
    outcomes = await asyncio.gather(*(attempt(c, t) for c, t in pairs))
    assert outcomes == [c == t for c, t in pairs]


async def test_owner_check_applies_to_server_streaming_methods(
    channel: grpc.aio.Channel,
) -> None:
    for name, count in (("OwnerStream", 2), ("OwnerWrite", 1)):
        call = channel.unary_stream(
            f"/test.Echo/{name}", request_serializer=_SER, response_deserializer=_DES
        )
        replies = [r async for r in call(Req(id=ALICE), metadata=USER, timeout=5)]
        assert [r.id for r in replies] == [ALICE] * count
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [r async for r in call(Req(id=BOB), metadata=USER, timeout=5)]
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_owner_policy_on_client_streaming_method_is_refused(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.stream_unary(
        "/test.Echo/OwnerClientStream", request_serializer=_SER, response_deserializer=_DES
    )

    async def requests() -> AsyncIterator[Req]:
        yield Req(id=ALICE)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(requests(), metadata=ADMIN, timeout=5)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_method_missing_from_the_table_is_denied_even_to_services(
    channel: grpc.aio.Channel,
) -> None:
    for md in (None, USER, ADMIN, SERVICE):
        code, details = await _status(channel, "Unlisted", md)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "no access policy" in details


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    code, _ = await _status(channel, "NoSuchMethod", SERVICE)
    assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_health_is_always_public(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_is_always_public(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> AsyncIterator[Any]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    replies = [r async for r in stub.ServerReflectionInfo(one(), timeout=5)]
    names = {s.name for s in replies[0].list_services_response.service}
    assert "test.Echo" in names


def test_current_principal_is_none_outside_a_call() -> None:
    assert current_principal() is None
