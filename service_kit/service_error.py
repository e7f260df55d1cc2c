"""The exception every service raises for an answer with a gRPC status.

It lives apart from :mod:`service_kit.errors` (which re-exports it) so that
modules that :mod:`service_kit.errors` itself uses, such as
:mod:`service_kit.dependency_errors`, can subclass it without an import cycle.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An error with the gRPC status it must be reported as."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, problem: str) -> ServiceError:
    """INVALID_ARGUMENT naming the field, e.g. ``limit: must be at most 1000``."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")
