"""The mailer: the event stream is the outbox of every mail the system sends.

It follows the store's subscription (``event_types`` filter, secrets
included: it needs a reset request's ``token_nonce``) and turns events into
mails:

- ``user.created`` / ``user.email.changed``: a verification mail to the
  (new) address, with the token for that address
  (``service_kit.mail_tokens``);
- ``user.password_reset.requested``: a reset mail with its token.

No mail goes to a user erased meanwhile (the address reads "[ERASED]").

The token is derived from the event with the mail key when the mail is
built; it is never stored anywhere. Mails whose token has already expired
(a mailer that was down for long) are skipped.

Delivery guarantee: a mail is sent, then its event's position is committed
as the mailer's checkpoint (``mail_outbox`` in the read model's database).
A crash before the send loses nothing (the event is read again); a crash
between the SMTP server's acceptance and the commit sends it once more,
with the same ``Message-ID`` (derived from the event id), so the duplicate
is recognisable; the file transport rewrites the same file, so there it is
exactly once. A mail the server refuses for good (bad recipient) is logged
and skipped; any other failure is retried with backoff, in order.

One sender at a time: the instance holding the lease row (renewed with every
checkpoint, expiring after ``lease_seconds``) sends; the others wait. The
first mailer ever starts at the log's head: no mail is sent for history.
Logs name users by id and events by position, never an address or a token.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Final

import aiosmtplib
import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from sqlalchemy import and_, bindparam, or_

import domain
from pii.codec import ERASED
from query_svc.db import Database
from query_svc.mail_transport import Mail, MailTransport
from query_svc.session_tables import SESSION_TABLES
from query_svc.settings import MailSettings
from service_kit.background import Restarting
from service_kit.mail_tokens import MailTokens
from service_kit.structs import struct_to_dict
from service_kit.timeconv import to_datetime, utcnow

__all__ = ["MAIL_EVENT_TYPES", "Mailer", "compose"]

log = logging.getLogger(__name__)

MAIL_EVENT_TYPES: Final[tuple[str, ...]] = (
    domain.UserCreated.EVENT_TYPE,
    domain.EmailChanged.EVENT_TYPE,
    domain.PasswordResetRequested.EVENT_TYPE,
)
_ROW: Final = "mailer"
_OUTBOX = SESSION_TABLES.mail_outbox
# Built once: the checkpoint is saved after every mail, and building the
# statement anew each time was a third of that save's CPU.
_SAVE_CHECKPOINT: Final = (
    _OUTBOX.update()
    .where(and_(_OUTBOX.c.name == _ROW, _OUTBOX.c.holder == bindparam("me")))
    .values(position=bindparam("at"), lease_until=bindparam("until"))
)
MetadataFn = Callable[[], list[tuple[str, str]]]


def compose(
    event: pb.Event,
    payload: Mapping[str, object],
    *,
    tokens: MailTokens,
    settings: MailSettings,
    now: datetime,
) -> Mail | None:
    """The mail an event asks for, or None (not a mail event, or its token expired)."""
    user_id = event.aggregate_id
    url = settings.public_url
    if event.event_type in (domain.UserCreated.EVENT_TYPE, domain.EmailChanged.EVENT_TYPE):
        address = payload.get(
            "email" if event.event_type == domain.UserCreated.EVENT_TYPE else "new_email"
        )
        if not isinstance(address, str) or address == ERASED:
            return None  # an erased user gets no mail (the address is gone)
        expires = to_datetime(event.timestamp) + settings.lifetimes.email_verification
        if now > expires:
            return None
        token = tokens.verification_token(user_id, address, event.version)
        text = (
            f"Hello,\n\nplease confirm that {address} is your address for cqrs-users.\n\n"
            f"Your confirmation token (valid until {domain.format_timestamp(expires)}):\n\n"
            f"    {token}\n\n"
            f"Confirm it with:\n\n"
            f'    curl -X POST {url}/verify-email/confirm -d \'{{"token":"{token}"}}\'\n\n'
            "If you did not sign up, ignore this mail.\n"
        )
        return Mail(f"{event.event_id}.verify", address, "Confirm your email address", text)
    if event.event_type == domain.PasswordResetRequested.EVENT_TYPE:
        address, nonce, expires_text = (
            payload.get("email"),
            payload.get("token_nonce"),
            payload.get("expires_at"),
        )
        if (
            not (
                isinstance(address, str)
                and isinstance(nonce, str)
                and isinstance(expires_text, str)
            )
            or address == ERASED
        ):
            return None
        if now > domain.parse_timestamp(expires_text, "expires_at"):
            return None
        token = tokens.reset_token(user_id, nonce)
        text = (
            "Hello,\n\nsomeone asked to reset the password of your cqrs-users account.\n\n"
            f"Your reset token (single use, valid until {expires_text}):\n\n"
            f"    {token}\n\n"
            "Set a new password with:\n\n"
            f"    curl -X POST {url}/password-reset/confirm \\\n"
            f'         -d \'{{"token":"{token}","new_password":"..."}}\'\n\n'
            "Every session of the account ends when you do. If you did not ask, "
            "ignore this mail: your password stays as it is.\n"
        )
        return Mail(f"{event.event_id}.reset", address, "Reset your password", text)
    return None


class LeaseLost(Exception):
    """Another instance holds the mailer's lease now."""


def _describe(exc: Exception) -> str | None:
    if isinstance(exc, LeaseLost):
        return "another instance took the lease; standing by"
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"event store {exc.code().name} {exc.details()}"
    return None


class Mailer:
    """Sends the mails the event stream asks for (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        channel: grpc.aio.Channel,
        metadata: MetadataFn,
        transport: MailTransport,
        tokens: MailTokens,
        settings: MailSettings,
        timeout: float = 5.0,
        lease_seconds: float = 30.0,
        heartbeat_seconds: int = 5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = database
        self._stub = pb_grpc.EventStoreServiceStub(channel)
        self._metadata = metadata
        self.transport = transport
        self._tokens = tokens
        self._settings = settings
        self._timeout = timeout
        self._lease = timedelta(seconds=lease_seconds)
        self._heartbeat = heartbeat_seconds
        self._clock = clock
        self._me = uuid.uuid4().hex[:16]
        self.position = 0
        self.sent = 0
        self._loop = Restarting(
            "mailer", self._run_once, first_pause=0.1, max_pause=10.0, describe=_describe
        )
        self.start, self.stop = self._loop.start, self._loop.stop

    # -- the lease and the checkpoint ---------------------------------------------

    async def _acquire(self) -> int | None:
        """Takes (or renews) the lease; the checkpoint if this instance holds it."""
        now = self._clock()
        async with self._db.write() as conn:
            found = await conn.execute(_OUTBOX.select().where(_OUTBOX.c.name == _ROW))
            row = found.mappings().first()
            if row is None:
                head = await self._stub.CountEvents(
                    pb.CountEventsRequest(), metadata=self._metadata(), timeout=self._timeout
                )
                await conn.execute(
                    _OUTBOX.insert().values(
                        name=_ROW,
                        position=int(head.count),
                        holder=self._me,
                        lease_until=now + self._lease,
                    )
                )
                return int(head.count)
            taken = await conn.execute(
                _OUTBOX.update()
                .where(
                    and_(
                        _OUTBOX.c.name == _ROW,
                        or_(
                            _OUTBOX.c.holder == self._me,
                            _OUTBOX.c.lease_until.is_(None),
                            _OUTBOX.c.lease_until < now,
                        ),
                    )
                )
                .values(holder=self._me, lease_until=now + self._lease)
            )
            return int(row["position"]) if taken.rowcount == 1 else None

    async def _commit(self, position: int) -> None:
        """Saves the checkpoint and renews the lease; :class:`LeaseLost` if it is gone."""
        self._loop.progressed()
        async with self._db.write() as conn:
            done = await conn.execute(
                _SAVE_CHECKPOINT,
                {"me": self._me, "at": position, "until": self._clock() + self._lease},
            )
        if done.rowcount != 1:
            raise LeaseLost()
        self.position = position

    # -- the loop -------------------------------------------------------------------

    async def _run_once(self) -> None:
        start = await self._acquire()
        if start is None:  # another instance sends; look again later
            await asyncio.sleep(self._lease.total_seconds() / 3)
            return
        self.position = start
        await self._follow()

    async def _follow(self) -> None:
        call = self._stub.Subscribe(
            pb.SubscribeRequest(
                from_position=self.position,
                heartbeat_seconds=self._heartbeat,
                include_secrets=True,
                max_batch=100,
                event_types=list(MAIL_EVENT_TYPES),
            ),
            metadata=self._metadata(),
        )
        try:
            async for message in call:
                kind = message.WhichOneof("message")
                if kind == "checkpoint":
                    await self._commit(max(self.position, message.checkpoint.position))
                    continue
                for event in message.batch.events if kind == "batch" else [message.event]:
                    await self._handle(event)
        finally:
            call.cancel()

    async def _handle(self, event: pb.Event) -> None:
        mail = compose(
            event,
            struct_to_dict(event.payload),
            tokens=self._tokens,
            settings=self._settings,
            now=self._clock(),
        )
        if mail is None:
            log.info("mailer: nothing to send for position %d (expired)", event.position)
        else:
            await self._deliver(mail, event)
        await self._commit(event.position)

    async def _deliver(self, mail: Mail, event: pb.Event) -> None:
        pause = 0.5
        while True:
            try:
                await self.transport.send(mail)
            except aiosmtplib.SMTPRecipientsRefused:
                log.error(
                    "mailer: the server refused the recipient of %s (user %s); skipped",
                    mail.message_id,
                    event.aggregate_id,
                )
                return
            except (OSError, aiosmtplib.SMTPException) as exc:
                log.warning(
                    "mailer: sending %s failed (%s); retrying in %.1fs",
                    mail.message_id,
                    type(exc).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            self.sent += 1
            log.info("mailer: sent %s (user %s)", mail.message_id, event.aggregate_id)
            return
