"""Who may call each QueryService method (deny by default for anything unlisted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from service_kit.auth import Access

SERVICE_NAME: Final = "cqrs.query.v1.QueryService"


def _method(name: str) -> str:
    return f"/{SERVICE_NAME}/{name}"


POLICIES: Final[Mapping[str, Access]] = {
    _method("Login"): Access.PUBLIC,
    _method("ListUsers"): Access.ADMIN,
    _method("GetUser"): Access.owner("id"),
    _method("GetLoginHistory"): Access.owner("id"),
    _method("RebuildReadModel"): Access.ADMIN,
    _method("RefreshToken"): Access.PUBLIC,
    _method("Logout"): Access.AUTHENTICATED,
    _method("ListSessions"): Access.owner("id"),
    _method("GetJwks"): Access.PUBLIC,
    _method("RequestPasswordReset"): Access.PUBLIC,
}
