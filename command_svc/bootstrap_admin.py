"""Registering the configured admin at start (``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``).

Idempotent: if the email is already claimed (ALREADY_EXISTS) the admin is
taken to exist and nothing is written. Note the limit this implies: if a
*normal* user registered that address first, it is not promoted; the log
says so and an operator must pick another ADMIN_EMAIL.

The store may still be starting (``make up`` starts everything at once), so
an unreachable store is retried with capped exponential backoff until it
answers or the task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import grpc

import domain
from command_svc.errors import StoreUnavailable
from command_svc.handlers import CommandHandler
from command_svc.settings import AdminAccount
from command_svc.store_client import Trace
from service_kit.errors import ServiceError

__all__ = ["bootstrap_admin"]

log = logging.getLogger(__name__)


async def bootstrap_admin(
    handler: CommandHandler,
    admin: AdminAccount,
    *,
    first_pause: float = 0.2,
    max_pause: float = 5.0,
) -> str | None:
    """Registers ``admin`` with role admin; returns its id, or None if it existed."""
    pause = first_pause
    while True:
        trace = Trace(
            correlation_id=f"bootstrap-admin-{uuid.uuid4()}", causation_id=str(uuid.uuid4())
        )
        try:
            outcome = await handler.register(
                email=admin.email, password=admin.password, trace=trace, role=domain.ROLE_ADMIN
            )
        except ServiceError as exc:
            if exc.code == grpc.StatusCode.ALREADY_EXISTS:
                log.info(
                    "admin bootstrap: %s is already registered; nothing to do"
                    " (if it is not an admin account, choose another ADMIN_EMAIL)",
                    admin.email,
                )
                return None
            if exc.code != grpc.StatusCode.UNAVAILABLE:
                raise
        except StoreUnavailable:
            pass
        else:
            log.info("admin bootstrap: registered %s as %s", admin.email, outcome.user_id)
            return outcome.user_id
        log.warning("admin bootstrap: event store unavailable; retrying in %.1fs", pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_pause)
