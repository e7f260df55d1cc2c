"""Test helpers for the token security every service enforces.

One key folder per test process (:data:`TEST_KEYS_DIR`, made at import time
in a temporary directory and removed at exit) holds every signer the
services use plus ``tests`` (the tests' own service identity) and the
names some suites call themselves by. Services under test get it through
``KEYS_DIR`` (:data:`TEST_TOKENS` for settings built by hand); tokens here
are signed with those keys exactly as the real signers sign them: user and
admin tokens with query_svc's key, service tokens with a key of their own name.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc

from command_svc.abuse_limits import AbuseLimits
from service_kit import keys
from service_kit.auth import (
    ROLE_ADMIN,
    ROLE_SERVICE,
    ROLE_USER,
    Principal,
    TokenSettings,
    TokenSigner,
    service_metadata,
)
from service_kit.timeconv import utcnow

TEST_SERVICES: Final = ("tests", "query-tests", "bench")
TEST_KEYS_DIR: Final = Path(tempfile.mkdtemp(prefix="cqrs-test-keys-"))
atexit.register(shutil.rmtree, TEST_KEYS_DIR, True)
keys.init_keys(TEST_KEYS_DIR, (*keys.DEFAULT_SIGNERS, *TEST_SERVICES))
TEST_TOKENS: Final = TokenSettings(keys_dir=TEST_KEYS_DIR)
TEST_ENV: Final = {"KEYS_DIR": str(TEST_KEYS_DIR)}
"""Environment that points a service at the test keys."""

_signers: dict[str, TokenSigner] = {}


def signer(name: str = keys.USER_TOKEN_ISSUER) -> TokenSigner:
    """The signer of ``name`` (query_svc: users and admins).

    A name without a key yet gets one, added to ``trusted.json``; running
    services pick it up when they first meet its key id.
    """
    if name not in _signers:
        keys.init_keys(TEST_KEYS_DIR, (name,))
        _signers[name] = TEST_TOKENS.signer(name)
    return _signers[name]


_RUN_TTL_SECONDS: Final = 24 * 3600
_RUN_TOKENS: Final = TokenSettings(keys_dir=TEST_KEYS_DIR, ttl_seconds=_RUN_TTL_SECONDS)
_run_signers: dict[str, TokenSigner] = {}


def token(
    subject: str, role: str = ROLE_USER, email: str = "", *, session_id: str = "", cv: int = 0
) -> str:
    """A token as its real signer would issue it (a service token is signed by ``subject``).

    It lives a day, not the services' 15 minutes: tests keep tokens made at import
    (module constants, conftest) and the full suite on a loaded machine runs longer
    than 15 minutes, after which every call with them would be "token expired".
    """
    name = subject if role == ROLE_SERVICE else keys.USER_TOKEN_ISSUER
    if name not in _run_signers:
        signer(name)  # the key exists and is trusted
        _run_signers[name] = _RUN_TOKENS.signer(name)
    principal = Principal(subject, email, role, session_id, cv)
    return _run_signers[name].issue(principal, now=utcnow())[0]


def bearer(subject: str, role: str = ROLE_USER, email: str = "") -> list[tuple[str, str]]:
    """Call metadata carrying a token for this subject and role."""
    return [("authorization", f"Bearer {token(subject, role, email)}")]


def service_identity(name: str = "tests") -> Callable[[], list[tuple[str, str]]]:
    """Renewing service metadata of a test service (see ``service_metadata``)."""
    return service_metadata(signer(name), name)


SERVICE = bearer("tests", ROLE_SERVICE)
ADMIN = bearer("admin-user", ROLE_ADMIN)


class _AddMetadata:
    """Adds fixed metadata to a call that does not already carry a token."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        existing = list(details.metadata or [])
        if not any(k == "authorization" for k, _ in existing):
            existing.extend(self._metadata)
        return details._replace(metadata=grpc.aio.Metadata(*existing))


if TYPE_CHECKING:  # grpc-stubs makes these generic; at run time they are not
    _UnaryBase = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _StreamBase = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryBase = grpc.aio.UnaryUnaryClientInterceptor
    _StreamBase = grpc.aio.UnaryStreamClientInterceptor


# grpc.aio files each interceptor under the first kind it is an instance of,
# so unary and streaming calls need one class each.
class _UnaryMetadata(_AddMetadata, _UnaryBase):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _StreamMetadata(_AddMetadata, _StreamBase):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


def channel_as(target: str, metadata: list[tuple[str, str]]) -> grpc.aio.Channel:
    """A channel whose calls carry ``metadata`` (e.g. SERVICE) unless they pass their own."""
    interceptors: list[Any] = [_UnaryMetadata(metadata), _StreamMetadata(metadata)]
    return grpc.aio.insecure_channel(target, interceptors=interceptors)


# The integration suites register many users from loopback; the budget itself is
# tested in tests/unit/command_svc/test_abuse_limits.py and tests/e2e/test_abuse.py.
MANY_REGISTRATIONS = AbuseLimits(register_per_address=1_000_000)
