"""The server interceptors every service installs, in their order.

0. tracing (:func:`service_kit.tracing.server_interceptors`, only when
   tracing is on): the call's span, continuing the caller's trace;
1. metrics (:class:`~service_kit.observability.MetricsInterceptor`): every
   call counted and timed, refusals included;
2. malformed requests (:class:`~service_kit.malformed_requests.MalformedRequestInterceptor`):
   bytes that do not parse are INVALID_ARGUMENT, not UNKNOWN (a refusal of
   the access rule below never parses, so it still comes first);
3. access (:class:`~service_kit.auth.AuthInterceptor`): the token, then the
   contract's access rule of the method (:func:`service_kit.access.policies`);
4. request rules (:class:`~service_kit.request_validation.RequestValidationInterceptor`):
   the contract's ``buf.validate`` rules, every violation at once.

So an anonymous caller learns nothing about a request's shape (401 first),
and a request that passed the access rule is checked before any handler runs.
"""

from __future__ import annotations

from typing import Any

import grpc

from service_kit import access, readiness, tracing
from service_kit.auth import AuthInterceptor, TokenVerifier
from service_kit.malformed_requests import MalformedRequestInterceptor
from service_kit.observability import MetricsInterceptor
from service_kit.request_validation import RequestValidationInterceptor
from service_kit.revocation import RevocationCheck

__all__ = ["service_interceptors"]


def service_interceptors(
    service_name: str,
    verifier: TokenVerifier,
    *,
    revocations: RevocationCheck | None,
    traced_as: str,
) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The interceptors of a server serving ``service_name`` (and readiness);
    its spans name the service ``traced_as`` (``store_svc``, ...)."""
    return [
        *tracing.server_interceptors(traced_as),
        MetricsInterceptor(),
        MalformedRequestInterceptor(),
        AuthInterceptor(
            verifier,
            access.policies(service_name, readiness.SERVICE_NAME),
            revocations=revocations,
        ),
        RequestValidationInterceptor(),
    ]
