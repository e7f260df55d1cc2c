"""The mail a transport sends: headers and body read back the same by any parser.

Two builders sit behind ``build_message`` (ASCII: compat32, fast; anything
else: the modern API); a reader must not be able to tell them apart.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from query_svc.mail_transport import Mail, build_message

TOKEN = "v1.abc_DEF-123.0123456789abcdef"
TEXT = (
    "Hello,\n\nplease confirm that ann@example.com is yours.\n\n"
    f"    {TOKEN}\n\n"
    f'    curl -X POST http://127.0.0.1:8080/verify-email/confirm -d \'{{"token":"{TOKEN}"}}\'\n'
)


def _read_back(mail: Mail, sender: str) -> EmailMessage:
    raw = bytes(build_message(mail, sender))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize(
    ("sender", "text"),
    [
        ("cqrs-users <noreply@localhost>", TEXT),  # all ASCII: the compat32 builder
        ("Benutzerkonten Müller <noreply@localhost>", TEXT),  # non-ASCII display name
        ("cqrs-users <noreply@localhost>", TEXT + "Grüße\n"),  # non-ASCII body
    ],
)
def test_both_builders_give_the_same_mail_to_a_reader(sender: str, text: str) -> None:
    mail = Mail("0f0e.verify", "ann@example.com", "Confirm your email address", text)
    message = _read_back(mail, sender)
    assert message["From"] == sender
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Confirm your email address"
    assert message["Message-ID"] == "<0f0e.verify@cqrs-users>"
    assert message["Date"]
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == text
    # The token is on one line, as written (no quoted-printable soft breaks).
    raw = bytes(build_message(mail, sender)).decode("utf-8", "replace")
    assert f"    {TOKEN}\n" in raw.replace("\r\n", "\n")


def test_an_all_ascii_mail_is_7bit() -> None:
    mail = Mail("k.verify", "ann@example.com", "Confirm your email address", TEXT)
    assert _read_back(mail, "noreply@localhost")["Content-Transfer-Encoding"] == "7bit"


def test_a_line_break_in_a_header_value_is_refused_not_injected() -> None:
    mail = Mail("k.verify", "ann@example.com", "Confirm your email address", TEXT)
    with pytest.raises(ValueError):
        bytes(build_message(mail, "noreply@localhost\nBcc: eve@example.com"))
