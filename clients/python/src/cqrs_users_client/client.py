"""The client: one async object in front of the three gRPC services.

``Client`` opens one grpclib channel per service (the command side, the
query side, the event store), keeps the caller's tokens, and maps every
failed call to an :mod:`cqrs_users_client.errors` exception carrying the
server's details.

Tokens: :meth:`Client.login` stores the access and refresh tokens it gets;
every later call sends ``authorization: Bearer <access token>``. Before a
call, an access token that expires within :data:`REFRESH_MARGIN` seconds is
renewed with the refresh token (which rotates: each works once); a call
refused as UNAUTHENTICATED is retried once after a refresh. Without a
refresh token (:meth:`Client.use_token` with an access token alone) the
token is used as it is until it fails.

The generated stubs stay reachable (``client.command``, ``client.query``,
``client.store``, betterproto ``ServiceStub`` s) with ``client.metadata()``
as their ``metadata`` for calls the facade does not wrap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Final, TypeVar

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cqrs_users_client.errors import ApiError, DetailsCodec, from_grpc_error
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
from cqrs_users_client.proto.cqrs.command import v1 as command_pb
from cqrs_users_client.proto.cqrs.eventstore import v1 as store_pb
from cqrs_users_client.proto.cqrs.query import v1 as query_pb

__all__ = ["DEFAULT_COMMAND", "DEFAULT_QUERY", "DEFAULT_STORE", "REFRESH_MARGIN", "Client"]

# Where `make up` serves each service.
DEFAULT_STORE: Final = "127.0.0.1:9090"
DEFAULT_COMMAND: Final = "127.0.0.1:9091"
DEFAULT_QUERY: Final = "127.0.0.1:9095"
REFRESH_MARGIN: Final = 30.0
"""Seconds before its expiry at which an access token is renewed ahead of a call."""

T = TypeVar("T")


def _channel(target: str) -> Channel:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{target!r}: expected host:port")
    return Channel(host.strip("[]"), int(port), status_details_codec=DetailsCodec())


class Client:
    """The cqrs-users API (see the module docstring). Use ``async with Client() as api``.

    ``store``, ``command`` and ``query`` are the services' ``host:port``
    (``make up``'s by default); ``timeout`` bounds each call (seconds).
    """

    def __init__(
        self,
        *,
        store: str = DEFAULT_STORE,
        command: str = DEFAULT_COMMAND,
        query: str = DEFAULT_QUERY,
        timeout: float = 10.0,
    ) -> None:
        self._channels = [_channel(command), _channel(query), _channel(store)]
        self.command = command_pb.CommandServiceStub(self._channels[0], timeout=timeout)
        self.query = query_pb.QueryServiceStub(self._channels[1], timeout=timeout)
        self.store = store_pb.EventStoreServiceStub(self._channels[2], timeout=timeout)
        self._token = ""
        self._refresh_token = ""
        self._expires_at = 0.0
        self._refreshing: asyncio.Lock | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channels."""
        for channel in self._channels:
            channel.close()

    # -- tokens --------------------------------------------------------------

    @property
    def token(self) -> str:
        """The access token in use ("" before a login)."""
        return self._token

    def use_token(self, token: str, refresh_token: str = "", expires_in: float = 0) -> None:
        """Uses tokens obtained elsewhere (``expires_in`` seconds from now; 0: unknown)."""
        self._token = token
        self._refresh_token = refresh_token
        self._expires_at = time.monotonic() + expires_in if expires_in else 0.0

    def metadata(self) -> dict[str, str]:
        """The call metadata that authenticates a call (empty before a login)."""
        return {"authorization": f"Bearer {self._token}"} if self._token else {}

    def _keep(self, session: Session) -> Session:
        self.use_token(session.token, session.refresh_token, session.expires_in)
        return session

    async def _fresh_token(self) -> None:
        if not self._refresh_token or not self._expires_at:
            return
        if self._expires_at - time.monotonic() > REFRESH_MARGIN:
            return
        await self.refresh()

    async def _call(self, call: Callable[[dict[str, str]], Awaitable[T]]) -> T:
        """``call(metadata)`` with a fresh token; one refresh and retry on UNAUTHENTICATED."""
        await self._fresh_token()
        try:
            return await call(self.metadata())
        except GRPCError as error:
            if error.status != Status.UNAUTHENTICATED or not self._refresh_token:
                raise from_grpc_error(error) from None
            refused = from_grpc_error(error)
        try:
            await self.refresh()
        except ApiError:
            raise refused from None  # the session is over: the call's own refusal
        try:
            return await call(self.metadata())
        except GRPCError as error:
            raise from_grpc_error(error) from None

    async def _public(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except GRPCError as error:
            raise from_grpc_error(error) from None

    # -- accounts (command side) ---------------------------------------------

    async def register(self, email: str, password: str) -> Registered:
        """Registers a user (public); ``AlreadyExists`` when the email is taken."""
        request = command_pb.RegisterRequest(email=email, password=password)
        reply = await self._public(lambda: self.command.register(request))
        return Registered(id=reply.id, version=reply.version, position=reply.position)

    async def change_email(self, user_id: str, new_email: str) -> Change:
        """Changes a user's email (the user or an admin)."""
        reply = await self._call(
            lambda md: self.command.change_email(
                command_pb.ChangeEmailRequest(id=user_id, new_email=new_email), metadata=md
            )
        )
        return Change(reply.id, reply.version, reply.position, reply.message, reply.email)

    async def change_password(
        self, user_id: str, new_password: str, *, old_password: str = ""
    ) -> Change:
        """Changes a password (a user gives the old one; an admin without it resets it).

        Every session of the user ends, this client's too when it is the user's.
        """
        reply = await self._call(
            lambda md: self.command.change_password(
                command_pb.ChangePasswordRequest(
                    id=user_id, old_password=old_password, new_password=new_password
                ),
                metadata=md,
            )
        )
        return Change(reply.id, reply.version, reply.position, reply.message)

    async def deactivate(self, user_id: str, reason: str = "") -> Change:
        """Deactivates a user (the user or an admin) and ends every session of it."""
        reply = await self._call(
            lambda md: self.command.deactivate(
                command_pb.DeactivateRequest(id=user_id, reason=reason), metadata=md
            )
        )
        return Change(reply.id, reply.version, reply.position, reply.message)

    async def activate(self, user_id: str, reason: str = "") -> Change:
        """Reactivates a deactivated user (admins)."""
        reply = await self._call(
            lambda md: self.command.activate(
                command_pb.ActivateRequest(id=user_id, reason=reason), metadata=md
            )
        )
        return Change(reply.id, reply.version, reply.position, reply.message)

    # -- sessions and reads (query side) -------------------------------------

    async def login(self, email: str, password: str) -> Session:
        """Logs in and keeps the tokens for the calls that follow."""
        reply = await self._public(
            lambda: self.query.login(query_pb.LoginRequest(email=email, password=password))
        )
        return self._keep(
            Session(
                token=reply.token,
                expires_in=reply.expires_in,
                refresh_token=reply.refresh_token,
                refresh_expires_in=reply.refresh_expires_in,
                session_id=reply.session_id,
                user=User.from_proto(reply.user),
            )
        )

    async def refresh(self) -> Session:
        """Trades the refresh token for new tokens (each refresh token works once)."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            used = self._refresh_token
            reply = await self._public(
                lambda: self.query.refresh_token(query_pb.RefreshTokenRequest(refresh_token=used))
            )
            return self._keep(
                Session(
                    token=reply.token,
                    expires_in=reply.expires_in,
                    refresh_token=reply.refresh_token,
                    refresh_expires_in=reply.refresh_expires_in,
                    session_id=reply.session_id,
                )
            )

    async def logout(self, *, everywhere: bool = False) -> int:
        """Ends this session (or every session of the user); the number ended."""
        reply = await self._call(
            lambda md: self.query.logout(query_pb.LogoutRequest(all=everywhere), metadata=md)
        )
        self.use_token("")
        ended: int = reply.sessions_revoked
        return ended

    async def get_user(self, user_id: str, *, min_position: int = 0) -> User:
        """A user of the read model, once it has applied ``min_position`` (the user or an admin)."""
        reply = await self._call(
            lambda md: self.query.get_user(
                query_pb.GetUserRequest(id=user_id, min_position=min_position), metadata=md
            )
        )
        return User.from_proto(reply.user)

    async def list_users(
        self, *, status: UserStatus | None = None, page_size: int = 100, page_token: str = ""
    ) -> UsersPage:
        """One page of users, optionally of one status (admins)."""
        request = query_pb.ListUsersRequest(page_size=page_size, page_token=page_token)
        if status is not None:
            request.status = status.to_proto()
        reply = await self._call(lambda md: self.query.list_users(request, metadata=md))
        users = tuple(User.from_proto(u) for u in reply.users)
        return UsersPage(users=users, next_page_token=reply.next_page_token)

    # -- events and time travel (event store) --------------------------------

    async def events(self, user_id: str, *, from_version: int = 0) -> list[Event]:
        """A user's events, oldest first (the user or an admin)."""
        reply = await self._call(
            lambda md: self.store.get_aggregate_events(
                store_pb.GetAggregateEventsRequest(aggregate_id=user_id, from_version=from_version),
                metadata=md,
            )
        )
        return [Event.from_proto(e) for e in reply.events]

    async def state(self, user_id: str) -> StateAt:
        """A user's current state, folded from its events."""
        reply = await self._call(
            lambda md: self.store.get_state(
                store_pb.GetStateRequest(aggregate_id=user_id), metadata=md
            )
        )
        return StateAt(UserState.from_proto(reply.state), reply.events_replayed)

    async def state_at(
        self, user_id: str, *, at: datetime | None = None, version: int | None = None
    ) -> StateAt:
        """A user's state as it was at a time (aware datetime) or after a version: give one."""
        if (at is None) == (version is None):
            raise ValueError("give exactly one of at, version")
        request = store_pb.GetStateAtRequest(aggregate_id=user_id)
        if at is not None:
            request.timestamp = at
        else:
            request.version = version  # type: ignore[assignment]  # checked above
        reply = await self._call(lambda md: self.store.get_state_at(request, metadata=md))
        as_of = reply.as_of if at is not None else None
        return StateAt(UserState.from_proto(reply.state), reply.events_replayed, as_of)
