"""Read-model rows to protobuf messages (no message ever carries a password hash)."""

from __future__ import annotations

from typing import Final

from cqrs.common.v1 import user_status_pb2
from cqrs.query.v1 import query_pb2 as pb

from query_svc.projection import ACTIVE, DEACTIVATED, ERASED_STATUS
from query_svc.read_model import LoginView, UserView
from query_svc.session_service import SessionStatus
from service_kit.timeconv import to_timestamp

STATUS_TO_PB: Final = {
    ACTIVE: user_status_pb2.USER_STATUS_ACTIVE,
    DEACTIVATED: user_status_pb2.USER_STATUS_DEACTIVATED,
    ERASED_STATUS: user_status_pb2.USER_STATUS_ERASED,
}
PB_TO_STATUS: Final[dict[int, str]] = {int(v): k for k, v in STATUS_TO_PB.items()}


def user_to_pb(user: UserView) -> pb.User:
    """The User message of a ``users`` row; absent timestamps stay unset."""
    msg = pb.User(
        id=user.id,
        email=user.email,
        role=user.role,
        status=STATUS_TO_PB.get(user.status, user_status_pb2.USER_STATUS_UNSPECIFIED),
        version=user.version,
        created_at=to_timestamp(user.created_at),
        updated_at=to_timestamp(user.updated_at),
        login_count=user.login_count,
        email_verified=user.email_verified,
    )
    if user.last_login_at is not None:
        msg.last_login_at.CopyFrom(to_timestamp(user.last_login_at))
    if user.deactivated_at is not None:
        msg.deactivated_at.CopyFrom(to_timestamp(user.deactivated_at))
    return msg


def login_to_pb(login: LoginView) -> pb.LoginRecord:
    return pb.LoginRecord(
        login_at=to_timestamp(login.login_at),
        client_address=login.client_address,
        version=login.version,
    )


def session_to_pb(listed: SessionStatus, *, current: str) -> pb.Session:
    """The Session message of a listed session; ``current``: the caller's session id."""
    session = listed.session
    msg = pb.Session(
        id=session.id,
        created_at=to_timestamp(session.created_at),
        expires_at=to_timestamp(session.expires_at),
        status=listed.status,
        revoked_reason=listed.reason,
        client_address=session.client_address,
        current=bool(current) and session.id == current,
    )
    if session.last_refreshed_at is not None:
        msg.last_refreshed_at.CopyFrom(to_timestamp(session.last_refreshed_at))
    if session.revoked_at is not None:
        msg.revoked_at.CopyFrom(to_timestamp(session.revoked_at))
    return msg
