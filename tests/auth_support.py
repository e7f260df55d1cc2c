"""Test helpers for the JWT security every service enforces."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from service_kit.auth import ROLE_ADMIN, ROLE_SERVICE, ROLE_USER, Principal, TokenCodec
from service_kit.timeconv import utcnow

TEST_JWT_SECRET = "test-secret-of-at-least-thirty-two-bytes!"
CODEC = TokenCodec(TEST_JWT_SECRET)


def token(subject: str, role: str = ROLE_USER, email: str = "") -> str:
    return CODEC.issue(Principal(subject=subject, email=email, role=role), now=utcnow())[0]


def bearer(subject: str, role: str = ROLE_USER) -> list[tuple[str, str]]:
    """Call metadata carrying a token for this subject and role."""
    return [("authorization", f"Bearer {token(subject, role)}")]


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
