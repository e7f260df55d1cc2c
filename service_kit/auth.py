"""Who is calling, and may they: signed bearer tokens and a deny-by-default gRPC interceptor.

One security model shared by every service:

- A caller proves who it is with ``authorization: Bearer <jwt>`` metadata.
  Tokens are EdDSA (Ed25519) JWTs with a ``kid`` header naming the key
  (``service_kit.keys``). Claims: ``sub``/``user_id`` (the user id, or a
  service name), ``email``, ``role`` (``user``, ``admin`` or ``service``),
  ``iss`` (the signer), ``iat``, ``exp``, ``jti``; a user's token also
  carries ``sid`` (its session) and ``cv`` (the credential version it was
  issued under), which :mod:`service_kit.revocation` checks.
- Only the signer holds its private key; verifiers hold public keys bound
  to signers. A verifier accepts a user or admin token only from
  :data:`~service_kit.keys.USER_TOKEN_ISSUER` (query_svc, which runs Login)
  and a service token only if its subject is the signer's own name: no
  service can mint a token for another, nor an admin token unless it is
  the issuer.
- Users get tokens from query_svc's Login; services mint their own with
  :func:`service_metadata` (role ``service``) with their own key.
- Every server installs :class:`AuthInterceptor` with a table saying, for each
  full method name, which :class:`Access` it needs: the contract's
  ``(cqrs.access.v1.access)`` option of each RPC, read by
  :func:`service_kit.access.policies`. A method missing from the table is
  refused (PERMISSION_DENIED): adding an RPC without deciding who may call it
  cannot open a hole. Health and reflection are always public.
- Status codes: no, invalid, expired or revoked token on a non-public method
  -> UNAUTHENTICATED; a valid token that may not do this -> PERMISSION_DENIED;
  revocations not loaded yet (a service just started) -> UNAVAILABLE.
- On a PUBLIC method a token is optional: a valid one sets the principal, an
  invalid, expired or revoked one is ignored (the call is anonymous), so a
  client that always sends its token can still register after it expired.
- A server stream opened with a user's or admin's token ends with
  UNAUTHENTICATED when that token is revoked or expires.
- During a call :func:`current_principal` returns the caller (or None).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

import grpc
import jwt

from service_kit import keys as key_files
from service_kit import metadata as md
from service_kit.errors import ServiceError
from service_kit.keys import SigningKey, TrustedKey, WatchedFile
from service_kit.method_wrappers import MethodWrappers, prechecked
from service_kit.revocation import NOT_READY, RevocationCheck
from service_kit.settings import SettingsError, env_int, env_str
from service_kit.timeconv import utcnow

__all__ = [
    "ROLES",
    "ROLE_ADMIN",
    "ROLE_SERVICE",
    "ROLE_USER",
    "Access",
    "AuthInterceptor",
    "Principal",
    "TokenSettings",
    "TokenSigner",
    "TokenVerifier",
    "credentials_expire_at",
    "current_principal",
    "service_metadata",
]

log = logging.getLogger(__name__)

ROLE_USER: Final = "user"
ROLE_ADMIN: Final = "admin"
ROLE_SERVICE: Final = "service"
ROLES: Final[tuple[str, ...]] = (ROLE_USER, ROLE_ADMIN, ROLE_SERVICE)

DEFAULT_TTL_SECONDS: Final = 900
MAX_TTL_SECONDS: Final = 30 * 24 * 3600
AUTHORIZATION: Final = "authorization"
_ALGORITHM: Final = "EdDSA"

# Method-name prefixes every client may call without a token: load balancers
# and grpcurl must be able to probe and describe any service.
_ALWAYS_PUBLIC: Final[tuple[str, ...]] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``subject`` is the user id, or the service name when ``role`` is
    :data:`ROLE_SERVICE` (then ``email`` is ``""``). ``session_id`` and
    ``credential_version`` are a user token's ``sid`` and ``cv`` claims
    ("" and 0 when absent, as in a service token).
    """

    subject: str
    email: str
    role: str
    session_id: str = ""
    credential_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def is_service(self) -> bool:
        return self.role == ROLE_SERVICE


def _unauthenticated(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message)


def _check_ttl(ttl_seconds: int) -> None:
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise SettingsError(
            f"JWT_TTL_SECONDS={ttl_seconds}: must be between 1 and {MAX_TTL_SECONDS}"
        )


class TokenSigner:
    """Issues EdDSA JWTs with one signer's current key.

    Invariant: every token names its key (``kid``) and its signer (``iss``);
    the key is read from ``key_source`` at each issue, so a rotated key is
    used from the next token on.
    """

    def __init__(
        self, key_source: Callable[[], SigningKey], *, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        _check_ttl(ttl_seconds)
        self._key_source = key_source
        self.ttl_seconds = ttl_seconds
        self.name = key_source().signer

    def __repr__(self) -> str:  # never show the key
        return f"TokenSigner(name={self.name!r}, ttl_seconds={self.ttl_seconds})"

    def issue(self, principal: Principal, *, now: datetime) -> tuple[str, int]:
        """A signed token for ``principal`` valid from ``now``, and its lifetime in seconds."""
        if principal.role not in ROLES:
            raise ValueError(f"unknown role {principal.role!r}")
        if not principal.subject:
            raise ValueError("principal.subject must not be empty")
        key = self._key_source()
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": key.signer,
            "sub": principal.subject,
            "user_id": principal.subject,
            "email": principal.email,
            "role": principal.role,
            "iat": iat,
            "exp": iat + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if principal.session_id:
            claims["sid"] = principal.session_id
        if principal.role != ROLE_SERVICE:
            claims["cv"] = principal.credential_version
        token = jwt.encode(claims, key.private_key, algorithm=_ALGORITHM, headers={"kid": key.kid})
        return token, self.ttl_seconds


_VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    """Checks EdDSA JWTs against trusted public keys bound to signers.

    Invariants: ``decode`` accepts only a token signed by a trusted, usable
    key (a retired key for one token lifetime after retirement), not
    expired, with a known role, a non-empty subject, and a role its signer
    may grant (see the module docstring).
    """

    def __init__(
        self,
        trusted: Callable[[], Mapping[str, TrustedKey]],
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        reload: Callable[[], Mapping[str, TrustedKey]] | None = None,
    ) -> None:
        _check_ttl(ttl_seconds)
        self._trusted = trusted
        self._reload = reload
        self.ttl_seconds = ttl_seconds
        # token -> (principal, exp): a verified token is not re-verified on
        # every call (a signature check is most of an append's auth cost).
        # Bounded; a hit is honoured only until the token's own exp.
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()

    def __repr__(self) -> str:
        return f"TokenVerifier(ttl_seconds={self.ttl_seconds})"

    def decode(self, token: str) -> Principal:
        """The principal a token names; ``ServiceError(UNAUTHENTICATED)`` if it is not valid."""
        return self.decode_with_expiry(token)[0]

    def decode_with_expiry(self, token: str) -> tuple[Principal, int]:
        """:meth:`decode`, and when the token expires (``exp``, Unix seconds)."""
        if not token:
            raise _unauthenticated("missing bearer token")
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                self._verified.move_to_end(token)
                return hit
            del self._verified[token]
            raise _unauthenticated("token expired")
        verified = self._verify(token)
        self._verified[token] = verified
        if len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    def _key(self, token: str) -> TrustedKey:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise _unauthenticated("invalid token") from None
        if not isinstance(kid, str):
            raise _unauthenticated("invalid token")
        key = self._trusted().get(kid)
        if key is None and self._reload is not None:
            key = self._reload().get(kid)  # a key added since the last look
        if key is None or not key.usable(time.time(), self.ttl_seconds):
            raise _unauthenticated("invalid token")
        return key

    def _verify(self, token: str) -> tuple[Principal, int]:
        key = self._key(token)
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[_ALGORITHM],
                # iat is required but not checked against our clock: a token
                # from a host whose clock runs a little ahead is still good.
                options={"require": ["sub", "exp", "iat"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("token expired") from None
        except jwt.PyJWTError:
            # The reason (bad signature, malformed, ...) is not told to the
            # caller: it would only help someone forging tokens.
            raise _unauthenticated("invalid token") from None
        subject, role, email = claims.get("sub"), claims.get("role"), claims.get("email", "")
        sid, cv = claims.get("sid", ""), claims.get("cv", 0)
        if not isinstance(subject, str) or not subject:
            raise _unauthenticated("invalid token")
        if role not in ROLES or not isinstance(email, str) or not isinstance(sid, str):
            raise _unauthenticated("invalid token")
        if not isinstance(cv, int) or isinstance(cv, bool):
            raise _unauthenticated("invalid token")
        if role == ROLE_SERVICE:
            if subject != key.signer:
                log.warning("a token of signer %s claims service %r; refused", key.signer, subject)
                raise _unauthenticated("invalid token")
        elif key.signer != key_files.USER_TOKEN_ISSUER:
            log.warning("signer %s is not allowed to issue %s tokens; refused", key.signer, role)
            raise _unauthenticated("invalid token")
        principal = Principal(
            subject=subject, email=email, role=str(role), session_id=sid, credential_version=cv
        )
        return principal, int(claims["exp"])


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Where a service finds its keys (``KEYS_DIR``) and how long tokens live.

    ``KEYS_DIR`` defaults to ``<DATA_DIR>/keys`` (what ``make up`` creates);
    nothing is read until :meth:`signer` or :meth:`verifier` is called, at
    start, which raises a ``SettingsError`` naming ``KEYS_DIR`` when a file
    is missing.
    """

    keys_dir: Path
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenSettings:
        data_dir = env_str(env, "DATA_DIR", "data")
        keys_dir = Path(env_str(env, "KEYS_DIR", str(Path(data_dir) / "keys")))
        ttl = env_int(
            env, "JWT_TTL_SECONDS", DEFAULT_TTL_SECONDS, minimum=1, maximum=MAX_TTL_SECONDS
        )
        return cls(keys_dir=keys_dir, ttl_seconds=ttl)

    def signer(self, name: str) -> TokenSigner:
        """The token signer of service ``name``, with its own key (re-read when rotated)."""
        path = key_files.signing_file(self.keys_dir, name)
        watched = WatchedFile([path], lambda: key_files.load_signing_key(self.keys_dir, name))
        return TokenSigner(watched.get, ttl_seconds=self.ttl_seconds)

    def trusted(self) -> WatchedFile[dict[str, TrustedKey]]:
        """The trusted public keys, re-read when ``trusted.json`` changes."""
        return WatchedFile(
            [self.keys_dir / key_files.TRUSTED_FILE], lambda: key_files.load_trusted(self.keys_dir)
        )

    def verifier(self, trusted: WatchedFile[dict[str, TrustedKey]] | None = None) -> TokenVerifier:
        """A verifier of every token signed by a trusted key (``trusted``: shared keys)."""
        watched = trusted if trusted is not None else self.trusted()
        return TokenVerifier(watched.get, ttl_seconds=self.ttl_seconds, reload=watched.reload_now)

    def mail_key(self) -> bytes:
        """The key one-time mail tokens are derived from."""
        return key_files.load_mail_key(self.keys_dir)


def bearer_token(invocation_metadata: Any) -> str:
    """The token of an ``authorization: Bearer <token>`` header, or ""."""
    value = md.get(invocation_metadata, AUTHORIZATION).strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def service_metadata(codec: TokenSigner, service_name: str) -> Callable[[], list[tuple[str, str]]]:
    """A callable returning the service's ``authorization`` metadata for an outbound call.

    The token (role ``service``, subject ``service_name``, which must be the
    signer's own name: verifiers refuse anything else) is cached and
    re-issued once less than a fifth of its lifetime (at most 5 minutes) is
    left, so a call never leaves with a token about to expire. Thread-safe.
    """
    if service_name != codec.name:
        raise ValueError(f"signer {codec.name!r} cannot mint tokens for {service_name!r}")
    margin = timedelta(seconds=min(300.0, codec.ttl_seconds / 5))
    principal = Principal(subject=service_name, email="", role=ROLE_SERVICE)
    lock = threading.Lock()
    cached: list[tuple[str, datetime]] = []  # [(header value, renew at)]

    def current() -> list[tuple[str, str]]:
        now = utcnow()
        with lock:
            if not cached or now >= cached[0][1]:
                token, ttl = codec.issue(principal, now=now)
                renew_at = now + timedelta(seconds=ttl) - margin
                cached[:] = [(f"Bearer {token}", renew_at)]
            header = cached[0][0]
        return [(AUTHORIZATION, header)]

    return current


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "service_kit.auth.principal", default=None
)


_expires: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "service_kit.auth.expires", default=None
)


def current_principal() -> Principal | None:
    """The caller of the RPC being served (None if anonymous or outside a call)."""
    return _principal.get()


def credentials_expire_at() -> int | None:
    """When the token of the call being served expires (Unix seconds; None: no token).

    A long-lived stream is authenticated once, when it opens: it must end by
    then (see ``store_svc``'s AppendStream).
    """
    return _expires.get()


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call a method (read from the contract by :mod:`service_kit.access`).

    - ``PUBLIC``: anyone, with or without a token;
    - ``AUTHENTICATED``: any valid token;
    - ``ADMIN``: an admin or a service;
    - ``SERVICE``: a service only;
    - ``owner(field)``: the user whose id is in request field ``field``, an
      admin, or a service (unary-request methods only).

    ``guarded`` names request fields only some callers may set (to anything
    but the default), each with the kind of caller it needs (``"service"``,
    ``"admin"``, ...), checked on the parsed request like the owner.
    """

    kind: str
    field: str = ""
    guarded: tuple[tuple[str, str], ...] = ()

    PUBLIC: ClassVar[Access]
    AUTHENTICATED: ClassVar[Access]
    ADMIN: ClassVar[Access]
    SERVICE: ClassVar[Access]

    @classmethod
    def owner(cls, field: str) -> Access:
        """The owner of the id in request field ``field`` (or an admin, or a service)."""
        if not field:
            raise ValueError("Access.owner needs a request field name")
        return cls("owner", field)

    def guarding(self, guarded: tuple[tuple[str, str], ...]) -> Access:
        """This rule, plus request fields only callers of a kind may set."""
        return Access(self.kind, self.field, guarded)

    @property
    def checks_request(self) -> bool:
        """Whether the rule needs the parsed request (an owner or a guarded field)."""
        return self.kind == "owner" or bool(self.guarded)

    def role_allows(self, principal: Principal) -> bool:
        """Whether ``principal``'s role alone passes (owner checks need the request)."""
        if self.kind in ("public", "authenticated"):
            return True
        if self.kind == "admin":
            return principal.role in (ROLE_ADMIN, ROLE_SERVICE)
        if self.kind == "service":
            return principal.role == ROLE_SERVICE
        # owner: admins and services always pass, users only with the right request
        return principal.role in (ROLE_USER, ROLE_ADMIN, ROLE_SERVICE)

    def request_denial(self, principal: Principal | None, request: object) -> str:
        """Why ``principal`` may not make this request ("" when it may)."""
        if self.kind == "owner" and (principal is None or not owns(principal, request, self.field)):
            return f"{self.field}: not yours; only its owner or an admin may do this"
        for name, kind in self.guarded:
            if _is_set(request, name) and (
                principal is None or not Access(kind).role_allows(principal)
            ):
                return f"{name}: {_RESERVED[kind]}"
        return ""


_RESERVED: Final = {
    "service": "reserved to the project's services",
    "admin": "reserved to admins and the project's services",
    "authenticated": "needs a signed-in caller",
    "public": "",
}


def _is_set(request: object, name: str) -> bool:
    """Whether a request field holds anything but its default."""
    try:
        return bool(request.HasField(name))  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no presence (a proto3 scalar, a repeated field)
        return bool(getattr(request, name, None))


Access.PUBLIC = Access("public")
Access.AUTHENTICATED = Access("authenticated")
Access.ADMIN = Access("admin")
Access.SERVICE = Access("service")


def owns(principal: Principal, request: object, field: str) -> bool:
    """True if ``principal`` may act on the id in ``request.field``."""
    if principal.role in (ROLE_ADMIN, ROLE_SERVICE):
        return True
    target = getattr(request, field, None)
    return isinstance(target, str) and target != "" and target == principal.subject


if TYPE_CHECKING:
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # the runtime class is not generic; only the stubs are
    _Handler = grpc.RpcMethodHandler


_REFUSAL_GRACE_SECONDS: Final = 2.0
"""How long a refused client stream is given to deliver its first message."""


def _refusing_handler(shape: _Handler | None, code: grpc.StatusCode, message: str) -> _Handler:
    """A handler of the same shape as ``shape`` that aborts every call."""

    async def abort_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def abort_stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises; this makes it an async generator

    async def abort_after_first(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        # A client stream's caller writes before it reads. Ended before its first
        # message arrives, the caller's write can fail in its own gRPC core, and
        # grpc-python then reports INTERNAL instead of our status; so wait
        # (briefly, bounded) for that message before refusing.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(anext(aiter(requests)), _REFUSAL_GRACE_SECONDS)
        await context.abort(code, message)

    async def abort_stream_after_first(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await abort_after_first(requests, context)
        yield  # pragma: no cover - abort raises; this makes it an async generator

    request_streaming = shape is not None and shape.request_streaming
    response_streaming = shape is not None and shape.response_streaming
    # Deserializer left out on purpose: the request is never looked at.
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream_after_first)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort_after_first)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort_unary)


def _request_checked(handler: _Handler, access: Access) -> _Handler:
    """Wraps a unary-request handler so the rule's request checks (the owner,
    guarded fields) run on the parsed request.

    The caller is read at call time from the call's context (set by the
    interceptor just before), so one wrapper serves every call of a method.
    """

    async def check(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if refused := access.request_denial(_principal.get(), request):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)

    wrapped = prechecked(handler, check)
    if wrapped is not None:
        return wrapped
    # Streaming requests have no single request to read the id from: a rule
    # like this is a contract mistake (service_kit.access refuses it at start),
    # refused here too rather than guessed.
    log.error("%r used on a client-streaming method; refusing", access)
    return _refusing_handler(handler, grpc.StatusCode.PERMISSION_DENIED, "not permitted")


def _ends_on_revocation(handler: _Handler, revocations: RevocationCheck) -> _Handler:
    """Wraps a response-streaming handler so the stream ends once the caller's token
    is revoked or expires (UNAUTHENTICATED, with the reason).

    The caller is read at call time from the call's context, like the owner
    check; only calls of users and admins are wrapped (see the interceptor).
    """

    async def watched(
        items: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        principal = _principal.get()
        if principal is None:
            async for item in items:
                yield item
            return
        expires = _expires.get()
        waiter = asyncio.ensure_future(revocations.wait_revoked(principal, expires))
        iterator = items.__aiter__()
        try:
            while True:
                step = asyncio.ensure_future(anext(iterator))
                await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if step.done():
                    try:
                        item = step.result()
                    except StopAsyncIteration:
                        return
                    yield item
                    continue
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, waiter.result())
        finally:
            waiter.cancel()
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        inner_us: Callable[..., AsyncIterator[Any]] = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            # An async generator itself: grpc.aio tells handler kinds apart by that.
            async for item in watched(inner_us(request, context), context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
        inner_ss: Callable[..., AsyncIterator[Any]] = handler.stream_stream

        async def stream_stream(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async for item in watched(inner_ss(requests, context), context):
                yield item

        return grpc.stream_stream_rpc_method_handler(
            stream_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Enforces an access table keyed by full method name (see the module docstring).

    ``revocations`` (a :class:`~service_kit.revocation.RevocationView`) is
    consulted for every user and admin token after its signature: two dict
    lookups, no network hop. Without one (unit tests) nothing is revoked.
    """

    def __init__(
        self,
        codec: TokenVerifier,
        policies: Mapping[str, Access],
        *,
        revocations: RevocationCheck | None = None,
    ) -> None:
        self._codec = codec
        self._policies = dict(policies)
        self._revocations = revocations
        self._request_wrappers: MethodWrappers[_Handler] = MethodWrappers(
            lambda method, handler: _request_checked(handler, self._policies[method])
        )
        self._watched_wrappers: MethodWrappers[_Handler] = MethodWrappers(
            lambda method, handler: _ends_on_revocation(handler, self._checker())
        )

    def _checker(self) -> RevocationCheck:
        assert self._revocations is not None
        return self._revocations

    def _revoked(self, principal: Principal) -> tuple[grpc.StatusCode, str] | None:
        if self._revocations is None or principal.role == ROLE_SERVICE:
            return None
        reason = self._revocations.revoked(principal)
        if not reason:
            return None
        if reason == NOT_READY:
            return grpc.StatusCode.UNAVAILABLE, reason
        return grpc.StatusCode.UNAUTHENTICATED, reason

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler:
        method = handler_call_details.method
        if method.startswith(_ALWAYS_PUBLIC):
            return await continuation(handler_call_details)
        handler: _Handler | None = await continuation(handler_call_details)
        if handler is None:
            return handler  # type: ignore[return-value]  # unknown method: UNIMPLEMENTED
        policy = self._policies.get(method)
        if policy is None:
            return _refusing_handler(
                handler, grpc.StatusCode.PERMISSION_DENIED, f"{method}: no access policy"
            )
        token = bearer_token(handler_call_details.invocation_metadata)
        principal: Principal | None = None
        if token:
            try:
                principal, expires = self._codec.decode_with_expiry(token)
                _expires.set(expires)
            except ServiceError as exc:
                if policy.kind != "public":
                    return _refusing_handler(handler, exc.code, exc.message)
        if principal is not None:
            refusal = self._revoked(principal)
            if refusal is not None:
                if policy.kind != "public":
                    return _refusing_handler(handler, *refusal)
                principal = None  # a revoked token on a public method: anonymous
                _expires.set(None)
        if policy.kind == "public":
            _principal.set(principal)
            return self._request_wrappers.get(method, handler) if policy.guarded else handler
        if principal is None:
            return _refusing_handler(
                handler, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"
            )
        if not policy.role_allows(principal):
            return _refusing_handler(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {principal.role!r} may not do this",
            )
        # grpc.aio runs the interceptors and the handler in one per-call
        # contextvars.Context, so this value is seen by the handler and no other call.
        _principal.set(principal)
        if policy.checks_request:
            handler = self._request_wrappers.get(method, handler)
        if (
            self._revocations is not None
            and handler.response_streaming
            and principal.role != ROLE_SERVICE
        ):
            handler = self._watched_wrappers.get(method, handler)
        return handler
