"""Delivering a mail: over SMTP (aiosmtplib), or as a file when no SMTP server is set.

Every mail has a ``Message-ID`` derived from the event it comes from
(``<event id>.<kind>@cqrs-users``): a mail sent again after a crash carries
the same id, so a mail client or an operator can recognise the duplicate,
and the file transport simply writes the same file again (it names the file
after the id, and replaces it atomically).

aiosmtplib is a maintained asyncio SMTP client with STARTTLS and login, so
sending never blocks the event loop; the standard library's ``email``
package builds the message.

Every mail is built with the ``email`` package's compat32 API when all of
it is ASCII (the normal case: addresses are ASCII by the domain's rules and
the texts are ours): about 0.4 ms of CPU instead of 1.7 ms with the modern
``EmailMessage`` API, whose header parsing was a fifth of query_svc's time
during registrations (the mailer runs on the loop that answers reads). Any
non-ASCII part (an operator's ``SMTP_FROM`` display name, say) takes the
modern API, which encodes headers (RFC 2047) and the body (UTF-8) for us.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import re
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.mime.text import MIMEText
from pathlib import Path
from typing import Final, Protocol

import aiosmtplib

from query_svc.settings import SmtpSettings

__all__ = ["FileTransport", "Mail", "MailTransport", "SmtpTransport", "transport_for"]

_DOMAIN: Final = "cqrs-users"
_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail to one address. ``key`` is unique per mail (event id + kind)."""

    key: str
    to: str
    subject: str
    text: str

    @property
    def message_id(self) -> str:
        return f"<{self.key}@{_DOMAIN}>"


class MailTransport(Protocol):
    """Sends one mail; raises on failure (the mailer retries)."""

    async def send(self, mail: Mail) -> None: ...

    def describe(self) -> str:
        """Where mail goes, for the start banner."""
        ...


def build_message(mail: Mail, sender: str) -> Message:
    """The RFC 5322 message of `mail` from `sender`: 7bit text/plain when all ASCII.

    7bit (not quoted-printable): no soft line breaks inside a token a reader
    copies. Header values never carry a line break: such a value (which only
    a misconfigured sender could bring) goes to the modern API, which refuses it.
    """
    parts = (sender, mail.to, mail.subject, mail.text)
    if not all(part.isascii() for part in parts) or any(
        "\r" in part or "\n" in part for part in parts[:3]
    ):
        return _build_encoded(mail, sender)
    message = MIMEText(mail.text, "plain", "us-ascii")  # us-ascii: 7bit transfer encoding
    _set_headers(message, mail, sender)
    return message


def _build_encoded(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    _set_headers(message, mail, sender)
    message.set_content(mail.text, cte="7bit" if mail.text.isascii() else "8bit")
    return message


def _set_headers(message: Message, mail: Mail, sender: str) -> None:
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message["Date"] = email.utils.formatdate(usegmt=True)


class SmtpTransport:
    """Sends over SMTP: optional STARTTLS and login, a deadline per mail."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    def describe(self) -> str:
        s = self._settings
        return f"SMTP {s.host}:{s.port}" + (" (STARTTLS)" if s.starttls else "")

    async def send(self, mail: Mail) -> None:
        s = self._settings
        await aiosmtplib.send(
            build_message(mail, s.sender),
            hostname=s.host,
            port=s.port,
            start_tls=s.starttls,
            username=s.username or None,
            password=s.password or None,
            timeout=s.timeout,
        )


class FileTransport:
    """Writes each mail as ``<folder>/<message id>.eml`` (the ``make up`` default)."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self._sender = sender

    def describe(self) -> str:
        return f"files in {self.folder}/ (no SMTP_HOST set)"

    def path_of(self, mail: Mail) -> Path:
        return self.folder / f"{_SAFE.sub('_', mail.key)}.eml"

    async def send(self, mail: Mail) -> None:
        data = bytes(build_message(mail, self._sender))
        # Off the event loop: creating a file can take a millisecond or more on a
        # busy disk, and every read query_svc answers would wait for it.
        await asyncio.to_thread(self._write, self.path_of(mail), data)

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mail.", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o600)  # it holds a one-time token
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def transport_for(settings: SmtpSettings) -> MailTransport:
    """SMTP when ``SMTP_HOST`` is set, else files under ``MAIL_DIR``."""
    if settings.host:
        return SmtpTransport(settings)
    return FileTransport(settings.folder, settings.sender)
