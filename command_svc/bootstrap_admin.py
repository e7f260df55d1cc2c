"""Registering the configured admin at start (``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``).

Idempotent: if the email is already claimed (ALREADY_EXISTS) nothing is
written, and the existing account is checked instead, so that start-up can
say plainly whether ``ADMIN_EMAIL``/``ADMIN_PASSWORD`` still sign in:

- ``ready``: an active admin whose password is ``ADMIN_PASSWORD``;
- ``deactivated``: the admin was deactivated (another admin can reactivate it);
- ``password changed``: the admin is active but ``ADMIN_PASSWORD`` no longer
  opens it (someone changed or reset its password);
- ``not an admin``: the address belongs to a user account (it is not promoted;
  an operator must pick another ``ADMIN_EMAIL``).

Whoever prints credentials (``make up``'s banner) prints them only when
:attr:`AdminBootstrap.usable`.

The store may still be starting (``make up`` starts everything at once), so
an unreachable store is retried with capped exponential backoff until it
answers or the task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

import grpc

import domain
from command_svc.errors import StoreUnavailable
from command_svc.handlers import CommandHandler, PasswordHashing
from command_svc.settings import AdminAccount
from command_svc.store_client import Trace
from service_kit.errors import ServiceError

__all__ = ["AdminBootstrap", "AdminStatus", "bootstrap_admin"]

log = logging.getLogger(__name__)


class AdminStatus(StrEnum):
    """What became of the configured admin account (see the module docstring)."""

    CREATED = "created"
    READY = "ready"
    DEACTIVATED = "deactivated"
    PASSWORD_CHANGED = "password changed"
    NOT_ADMIN = "not an admin"


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """The outcome: the account's status and id ("" when it is not an admin)."""

    status: AdminStatus
    user_id: str
    email: str

    @property
    def usable(self) -> bool:
        """Whether ``ADMIN_EMAIL``/``ADMIN_PASSWORD`` sign in as an admin."""
        return self.status in (AdminStatus.CREATED, AdminStatus.READY)

    def describe(self) -> str:
        """One line for the log and the banner (never the password)."""
        match self.status:
            case AdminStatus.CREATED:
                return f"{self.email} registered as admin {self.user_id}"
            case AdminStatus.READY:
                return f"{self.email} is an active admin ({self.user_id})"
            case AdminStatus.DEACTIVATED:
                return (
                    f"UNUSABLE: admin {self.email} ({self.user_id}) is deactivated; another "
                    "admin can reactivate it (POST /users/{id}/activate)"
                )
            case AdminStatus.PASSWORD_CHANGED:
                return (
                    f"UNUSABLE: ADMIN_PASSWORD does not sign in as admin {self.email} "
                    f"({self.user_id}): its password was changed, or it was created with "
                    "another one; sign in with its password, or have another admin reset "
                    "it (PUT /users/{id}/password)"
                )
        return (
            f"UNUSABLE: {self.email} belongs to an account that is not an admin; "
            "choose another ADMIN_EMAIL"
        )


async def _existing(
    handler: CommandHandler, admin: AdminAccount, hasher: PasswordHashing
) -> AdminBootstrap:
    """The status of the account that holds ``admin.email`` already."""
    for state in await handler.roster.admins():
        if state.email != admin.email:
            continue
        if not state.is_active:
            return AdminBootstrap(AdminStatus.DEACTIVATED, state.user_id, admin.email)
        if not await hasher.verify(admin.password, state.password_hash):
            return AdminBootstrap(AdminStatus.PASSWORD_CHANGED, state.user_id, admin.email)
        return AdminBootstrap(AdminStatus.READY, state.user_id, admin.email)
    return AdminBootstrap(AdminStatus.NOT_ADMIN, "", admin.email)


async def bootstrap_admin(
    handler: CommandHandler,
    admin: AdminAccount,
    hasher: PasswordHashing,
    *,
    first_pause: float = 0.2,
    max_pause: float = 5.0,
) -> AdminBootstrap:
    """Registers ``admin`` with role admin, or reports on the account that has its email."""
    pause = first_pause
    while True:
        trace = Trace(
            correlation_id=f"bootstrap-admin-{uuid.uuid4()}", causation_id=str(uuid.uuid4())
        )
        try:
            try:
                outcome = await handler.register(
                    email=admin.email, password=admin.password, trace=trace, role=domain.ROLE_ADMIN
                )
            except ServiceError as exc:
                if exc.code != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                result = await _existing(handler, admin, hasher)
            else:
                result = AdminBootstrap(AdminStatus.CREATED, outcome.user_id, admin.email)
        except ServiceError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE:
                raise
        except StoreUnavailable:
            pass
        else:
            (log.info if result.usable else log.warning)("admin bootstrap: %s", result.describe())
            return result
        log.warning("admin bootstrap: event store unavailable; retrying in %.1fs", pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_pause)
