"""cqrs-users-client: a typed async Python client of the cqrs-users gRPC API.

    from cqrs_users_client import Client

    async with Client() as api:                 # make up's ports by default
        user = await api.register("jane@example.com", "SecurePass123!")
        await api.login("jane@example.com", "SecurePass123!")
        await api.change_email(user.id, "jane@new.example.com")
        print((await api.state(user.id)).state.email)

Errors are :class:`ApiError` subclasses (``InvalidArgument`` carries every
invalid field in ``violations``). The generated betterproto code is in
``cqrs_users_client.proto`` (``cqrs.command.v1``, ``cqrs.query.v1``,
``cqrs.eventstore.v1``, ``google.rpc``).
"""

from cqrs_users_client.client import (
    DEFAULT_COMMAND,
    DEFAULT_QUERY,
    DEFAULT_STORE,
    REFRESH_MARGIN,
    Client,
)
from cqrs_users_client.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from cqrs_users_client.models import (
    Change,
    Event,
    Registered,
    Session,
    StateAt,
    User,
    UsersPage,
    UserState,
    UserStatus,
)

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_QUERY",
    "DEFAULT_STORE",
    "REFRESH_MARGIN",
    "AlreadyExists",
    "ApiError",
    "Change",
    "Client",
    "Conflict",
    "Event",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Registered",
    "Session",
    "StateAt",
    "Unauthenticated",
    "Unavailable",
    "User",
    "UserState",
    "UserStatus",
    "UsersPage",
]
