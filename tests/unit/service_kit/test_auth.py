"""service_kit.auth: tokens, service identity, revocation, and every interceptor branch.

The interceptor is exercised through a real grpc.aio server on 127.0.0.1:0
serving a tiny generic service, called by a real grpc.aio client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cqrs.command.v1 import command_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import service_kit.auth as auth_module
from service_kit import keys
from service_kit.auth import (
    ROLE_ADMIN,
    ROLE_SERVICE,
    ROLE_USER,
    Access,
    AuthInterceptor,
    Principal,
    TokenSettings,
    TokenSigner,
    TokenVerifier,
    bearer_token,
    current_principal,
    service_metadata,
)
from service_kit.errors import ServiceError
from service_kit.revocation import Ended, RevocationView
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"

ISSUER = keys.generate_signing_key(keys.USER_TOKEN_ISSUER)
COMMAND = keys.generate_signing_key("command_svc")
STRANGER = keys.generate_signing_key(keys.USER_TOKEN_ISSUER)  # not trusted


def _trusted(*signing: keys.SigningKey) -> dict[str, keys.TrustedKey]:
    return {k.kid: keys.TrustedKey(k.signer, k.kid, k.private_key.public_key()) for k in signing}


TRUSTED = _trusted(ISSUER, COMMAND)


def _signer(key: keys.SigningKey = ISSUER, ttl: int = 900) -> TokenSigner:
    return TokenSigner(lambda: key, ttl_seconds=ttl)


def _verifier(trusted: Mapping[str, keys.TrustedKey] = TRUSTED, ttl: int = 900) -> TokenVerifier:
    return TokenVerifier(lambda: trusted, ttl_seconds=ttl)


# -- signing and verifying --------------------------------------------------------


def test_issue_then_decode_round_trips_every_claim() -> None:
    signer = _signer(ttl=600)
    principal = Principal(ALICE, "a@example.com", ROLE_USER, "sid-1", 7)
    token, expires_in = signer.issue(principal, now=datetime.now(UTC))
    assert expires_in == 600
    assert _verifier().decode(token) == principal
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("EdDSA", ISSUER.kid)
    claims = jwt.decode(token, ISSUER.private_key.public_key(), algorithms=["EdDSA"])
    assert claims["sub"] == claims["user_id"] == ALICE
    assert (claims["iss"], claims["sid"], claims["cv"]) == ("query_svc", "sid-1", 7)
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]


def test_a_token_verifies_with_the_public_key_alone() -> None:
    """What a third party does with the published JWKS: no secret needed."""
    token, _ = _signer().issue(Principal(ALICE, "", ROLE_USER), now=datetime.now(UTC))
    jwk = jwt.PyJWK(ISSUER.public_jwk())
    assert jwt.decode(token, jwk.key, algorithms=["EdDSA"])["sub"] == ALICE


def test_each_token_has_its_own_jti() -> None:
    signer = _signer()
    p = Principal(ALICE, "a@example.com", ROLE_USER)
    now = datetime.now(UTC)
    first, second = signer.issue(p, now=now)[0], signer.issue(p, now=now)[0]
    assert (
        jwt.decode(first, options={"verify_signature": False})["jti"]
        != jwt.decode(second, options={"verify_signature": False})["jti"]
    )


def test_repr_never_shows_the_key() -> None:
    secret = ISSUER.private_jwk()["d"]
    assert secret not in repr(_signer())
    assert secret not in repr(ISSUER)


def test_settings_read_keys_dir_and_ttl() -> None:
    settings = TokenSettings.from_env({"DATA_DIR": "/srv/x", "JWT_TTL_SECONDS": "120"})
    assert (settings.keys_dir, settings.ttl_seconds) == (Path("/srv/x/keys"), 120)
    assert TokenSettings.from_env({"KEYS_DIR": "/k"}).keys_dir.as_posix() == "/k"
    assert TokenSettings.from_env({}).ttl_seconds == 900


@pytest.mark.parametrize("raw", ["abc", "0", str(31 * 86400)])
def test_settings_name_a_bad_ttl(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^JWT_TTL_SECONDS"):
        TokenSettings.from_env({"JWT_TTL_SECONDS": raw})


def test_missing_key_files_name_keys_dir(tmp_path: Path) -> None:
    settings = TokenSettings(keys_dir=tmp_path)
    with pytest.raises(SettingsError, match=r"^KEYS_DIR.*service_kit\.keys init"):
        settings.verifier()
    with pytest.raises(SettingsError, match=r"^KEYS_DIR"):
        settings.signer("query_svc")


def test_issue_refuses_unknown_role_and_empty_subject() -> None:
    signer = _signer()
    with pytest.raises(ValueError, match="role"):
        signer.issue(Principal(ALICE, "", "root"), now=NOW)
    with pytest.raises(ValueError, match="subject"):
        signer.issue(Principal("", "", ROLE_USER), now=NOW)


def _unauthenticated(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(ServiceError) as info:
        verifier.decode(token)
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    return info.value.message


def test_decode_refuses_missing_expired_forged_and_malformed_tokens() -> None:
    verifier = _verifier()
    p = Principal(ALICE, "a@example.com", ROLE_USER)
    assert "missing" in _unauthenticated(verifier, "")
    expired, _ = _signer(ttl=60).issue(p, now=datetime.now(UTC) - timedelta(minutes=5))
    assert "expired" in _unauthenticated(verifier, expired)
    forged, _ = _signer(STRANGER).issue(p, now=datetime.now(UTC))
    assert _unauthenticated(verifier, forged) == "invalid token"
    assert _unauthenticated(verifier, "not.a.jwt") == "invalid token"
    header, payload, signature = _signer().issue(p, now=datetime.now(UTC))[0].split(".")
    assert _unauthenticated(verifier, f"{header}.{payload}x.{signature}") == "invalid token"


def test_a_signer_can_grant_only_what_its_binding_allows() -> None:
    """command_svc's key makes command_svc's service tokens and nothing else."""
    verifier, now = _verifier(), datetime.now(UTC)
    own, _ = _signer(COMMAND).issue(Principal("command_svc", "", ROLE_SERVICE), now=now)
    assert verifier.decode(own).subject == "command_svc"
    for principal in (
        Principal(ALICE, "", ROLE_ADMIN),  # an admin token
        Principal(ALICE, "", ROLE_USER),  # a user token
        Principal("query_svc", "", ROLE_SERVICE),  # another service's identity
    ):
        minted, _ = _signer(COMMAND).issue(principal, now=now)
        assert _unauthenticated(verifier, minted) == "invalid token"
    # The user-token issuer may mint users and admins, and only its own service name.
    impostor, _ = _signer().issue(Principal("command_svc", "", ROLE_SERVICE), now=now)
    assert _unauthenticated(verifier, impostor) == "invalid token"


def test_a_retired_key_verifies_for_one_token_lifetime_then_not() -> None:
    now = time.time()
    token, _ = _signer().issue(Principal(ALICE, "", ROLE_USER), now=datetime.now(UTC))
    public = ISSUER.private_key.public_key()
    fresh = {ISSUER.kid: keys.TrustedKey("query_svc", ISSUER.kid, public, int(now) - 10)}
    assert _verifier(fresh).decode(token).subject == ALICE
    stale = {ISSUER.kid: keys.TrustedKey("query_svc", ISSUER.kid, public, int(now) - 1000)}
    assert _unauthenticated(_verifier(stale), token) == "invalid token"


def test_an_unknown_kid_triggers_one_reload() -> None:
    seen: list[int] = []

    def reload() -> dict[str, keys.TrustedKey]:
        seen.append(1)
        return TRUSTED

    verifier = TokenVerifier(lambda: {}, reload=reload)
    token, _ = _signer().issue(Principal(ALICE, "", ROLE_USER), now=datetime.now(UTC))
    assert verifier.decode(token).subject == ALICE and seen == [1]


def _signed(claims: dict[str, Any], *, key: keys.SigningKey = ISSUER, alg: str = "EdDSA") -> str:
    if alg == "none":
        return jwt.encode(claims, "", algorithm="none", headers={"kid": key.kid})
    return jwt.encode(claims, key.private_key, algorithm=alg, headers={"kid": key.kid})


@pytest.mark.parametrize(
    "claims",
    [
        {"role": ROLE_USER, "email": ""},  # no sub
        {"sub": "", "role": ROLE_USER},  # empty sub
        {"sub": ALICE, "role": "root"},  # unknown role
        {"sub": ALICE},  # no role
        {"sub": ALICE, "role": ROLE_USER, "email": 7},  # email not a string
        {"sub": ALICE, "role": ROLE_USER, "cv": "1"},  # cv not an integer
        {"sub": ALICE, "role": ROLE_USER, "sid": 5},  # sid not a string
    ],
)
def test_decode_refuses_tokens_with_bad_claims(claims: dict[str, Any]) -> None:
    now = int(datetime.now(UTC).timestamp())
    token = _signed({"iat": now, "exp": now + 60, **claims})
    assert _unauthenticated(_verifier(), token) == "invalid token"


def test_decode_accepts_a_token_issued_slightly_in_the_future() -> None:
    p = Principal(ALICE, "", ROLE_USER)
    token, _ = _signer().issue(p, now=datetime.now(UTC) + timedelta(seconds=20))
    assert _verifier().decode(token) == p


def test_decode_refuses_unsigned_hmac_and_exp_less_tokens() -> None:
    now = int(datetime.now(UTC).timestamp())
    verifier = _verifier()
    claims = {"sub": ALICE, "role": ROLE_ADMIN, "iat": now, "exp": now + 60}
    assert _unauthenticated(verifier, _signed(claims, alg="none")) == "invalid token"
    # An HS256 token "signed" with the public key as an HMAC secret (alg confusion).
    public = ISSUER.public_jwk()["x"].encode()
    confused = jwt.encode(claims, public * 2, algorithm="HS256", headers={"kid": ISSUER.kid})
    assert _unauthenticated(verifier, confused) == "invalid token"
    no_exp = _signed({"sub": ALICE, "role": ROLE_ADMIN, "iat": now})
    assert _unauthenticated(verifier, no_exp) == "invalid token"


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
    signer = _signer(COMMAND, ttl=100)
    clock = [datetime.now(UTC)]
    monkeypatch.setattr(auth_module, "utcnow", lambda: clock[0])
    current = service_metadata(signer, "command_svc")
    [(key, value)] = current()
    assert key == "authorization"
    assert value.startswith("Bearer ")
    decoded = _verifier().decode(value.removeprefix("Bearer "))
    assert decoded == Principal("command_svc", "", ROLE_SERVICE)
    clock[0] += timedelta(seconds=79)  # 21 s left: more than a fifth of 100 s
    assert current() == [(key, value)]
    clock[0] += timedelta(seconds=2)  # 19 s left: re-issued
    [(_, renewed)] = current()
    assert renewed != value
    claims = jwt.decode(renewed.removeprefix("Bearer "), options={"verify_signature": False})
    assert claims["iat"] == int(clock[0].timestamp())


def test_service_metadata_refuses_another_services_name() -> None:
    with pytest.raises(ValueError, match="cannot mint"):
        service_metadata(_signer(COMMAND), "query_svc")


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


async def _endless(request: Req, context: Any) -> AsyncIterator[Req]:
    while True:
        yield _echo_principal(request)
        await asyncio.sleep(0.05)


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
_HANDLERS["Endless"] = grpc.unary_stream_rpc_method_handler(_endless, _DES, _SER)
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
    "/test.Echo/Endless": Access.ADMIN,
}


def _add(servicer: object, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", _HANDLERS),))


VERIFIER = _verifier()


def _token(subject: str, role: str, sid: str = "", cv: int = 0) -> list[tuple[str, str]]:
    # A day, not 15 minutes: USER/ADMIN/SERVICE are made at import, and the full
    # suite on a loaded machine reaches these tests later than that.
    key = COMMAND if role == ROLE_SERVICE else ISSUER
    signer = _signer(key, ttl=24 * 3600)
    principal = Principal(subject, f"{subject}@x.io", role, sid, cv)
    token, _ = signer.issue(principal, now=datetime.now(UTC))
    return [("authorization", f"Bearer {token}")]


USER = _token(ALICE, ROLE_USER)
ADMIN = _token(BOB, ROLE_ADMIN)
SERVICE = _token("command_svc", ROLE_SERVICE)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(
        "127.0.0.1:0",
        [Registration("test.Echo", _add, object())],
        interceptors=[AuthInterceptor(VERIFIER, POLICIES)],
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
    old, _ = _signer().issue(
        Principal(BOB, "", ROLE_ADMIN), now=datetime.now(UTC) - timedelta(hours=2)
    )
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
    assert (response.id, response.new_email) == ("command_svc", ROLE_SERVICE)


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
    assert (await _call(channel, "Owner", SERVICE, ALICE)).id == "command_svc"


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


# -- revocation -------------------------------------------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[grpc.aio.Channel, RevocationView]]:
    """A server whose interceptor consults a revocation view the test feeds."""
    view = RevocationView(horizon=3600)
    running = await start_server(
        "127.0.0.1:0",
        [Registration("test.Echo", _add, object())],
        interceptors=[AuthInterceptor(VERIFIER, POLICIES, revocations=view)],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield ch, view
    await running.stop(0)


def _ended(user: str, version: int, session: str = "", why: str = "logout") -> Ended:
    return Ended(user, version, session, time.time(), why)


async def test_user_tokens_wait_for_the_view_and_services_do_not(
    guarded: tuple[grpc.aio.Channel, RevocationView],
) -> None:
    channel, view = guarded
    code, details = await _status(channel, "Authenticated", USER)
    assert code == grpc.StatusCode.UNAVAILABLE and "not loaded" in details
    assert (await _call(channel, "Public", USER)).id == "anonymous"
    assert (await _call(channel, "Admin", SERVICE)).id == "command_svc"
    view.start_from(0, ready_at=0)
    assert (await _call(channel, "Authenticated", USER)).id == ALICE


async def test_revoked_tokens_are_refused_and_later_ones_are_not(
    guarded: tuple[grpc.aio.Channel, RevocationView],
) -> None:
    channel, view = guarded
    view.start_from(0, ready_at=0)
    old = _token(ALICE, ROLE_USER, sid="s-1", cv=3)
    other_session = _token(ALICE, ROLE_USER, sid="s-2", cv=3)
    assert (await _call(channel, "Owner", old)).id == ALICE
    view.apply(_ended(ALICE, 0, "s-1"), position=10)  # logout of s-1
    code, details = await _status(channel, "Owner", old)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert details == "token revoked: logout"
    assert (await _call(channel, "Owner", other_session)).id == ALICE
    view.apply(_ended(ALICE, 9, why="the password was changed"), position=11)
    code, details = await _status(channel, "Owner", other_session)
    assert (code, details) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "token revoked: the password was changed",
    )
    # A token issued after the change (credential version 9) works.
    assert (await _call(channel, "Owner", _token(ALICE, ROLE_USER, sid="s-3", cv=9))).id == ALICE
    # A revoked token on a public method is simply anonymous.
    assert (await _call(channel, "Public", old)).id == "anonymous"


async def test_an_open_stream_ends_when_its_token_is_revoked(
    guarded: tuple[grpc.aio.Channel, RevocationView],
) -> None:
    channel, view = guarded
    view.start_from(0, ready_at=0)
    md = _token(BOB, ROLE_ADMIN, sid="s-9", cv=1)
    endless = channel.unary_stream(
        "/test.Echo/Endless", request_serializer=_SER, response_deserializer=_DES
    )
    call = endless(Req(id=BOB), metadata=md, timeout=10)
    first = await call.read()
    assert isinstance(first, Req) and first.id == BOB
    started = time.monotonic()
    view.apply(_ended(BOB, 0, "s-9"), position=20)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while True:
            await call.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info.value.details() == "token revoked: logout"
    assert time.monotonic() - started < 1.0


async def test_an_open_stream_ends_when_its_token_expires(
    guarded: tuple[grpc.aio.Channel, RevocationView],
) -> None:
    channel, view = guarded
    view.start_from(0, ready_at=0)
    token, _ = _signer(ttl=1).issue(Principal(BOB, "", ROLE_ADMIN, "s-x", 0), now=datetime.now(UTC))
    endless = channel.unary_stream(
        "/test.Echo/Endless", request_serializer=_SER, response_deserializer=_DES
    )
    call = endless(Req(id=BOB), metadata=[("authorization", f"Bearer {token}")], timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while True:
            await call.read()
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "token expired",
    )
