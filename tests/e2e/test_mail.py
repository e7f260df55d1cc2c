"""Password reset and email verification over a real SMTP server (aiosmtpd).

The system runs as ``make up`` does, with ``SMTP_HOST``/``SMTP_PORT`` pointing
at an aiosmtpd server in this process and one-time tokens that expire after
a few seconds, so expiry is seen too. What is checked is what a user sees:
the mails arrive, their tokens work once and expire, an unknown address
gets no mail but the same answer, requests are rate-limited, and no token
ever shows in the system's log.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.body_log import BodyLog
from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.http_client import HttpClient
from tests.e2e.support import login, register, unique_email
from tests.e2e.system_process import SystemProcess, free_ports, start_system

pytestmark = pytest.mark.e2e

TOKEN_TTL = 5  # seconds, for both kinds of token
TOKEN = re.compile(r"^ +([A-Za-z0-9_-]{60,70})\s*$", re.MULTILINE)


@dataclass
class Inbox:
    """Every mail the SMTP server accepted, by recipient."""

    port: int
    messages: list[tuple[str, EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if rcpt == address]

    def wait_for(self, address: str, subject: str, *, count: int = 1) -> EmailMessage:
        deadline = time.monotonic() + 10
        while True:
            found = [m for m in self.to(address) if m["Subject"] == subject]
            if len(found) >= count:
                return found[count - 1]
            assert time.monotonic() < deadline, f"no {subject!r} mail for {address}"
            time.sleep(0.05)


def token_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = TOKEN.search(body.get_content())
    assert match, body.get_content()
    return match.group(1)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    handler = Inbox(port=free_ports(1)[0])
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mail_system(
    tmp_path_factory: pytest.TempPathFactory, body_log: BodyLog, inbox: Inbox
) -> Iterator[SystemProcess]:
    system = start_system(
        tmp_path_factory.mktemp("e2e-mail"),
        body_log,
        extra_env={
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(inbox.port),
            "SMTP_FROM": "Accounts <accounts@example.com>",
            "PASSWORD_RESET_TTL_SECONDS": str(TOKEN_TTL),
            "EMAIL_VERIFICATION_TTL_SECONDS": str(TOKEN_TTL),
            "PASSWORD_RESET_MAX_PER_EMAIL": "3",
        },
    )
    try:
        yield system
    finally:
        code = system.stop()
    assert code == 0, system.log_tail()
    log = system.log_path.read_text(errors="replace")
    with inbox.lock:
        tokens = [token_in(m) for _, m in inbox.messages]
    leaked = [t for t in tokens if t in log]
    assert not leaked, "a mailed token is in the system's log"
    assert not (system.data_dir / "mail").exists(), "with SMTP set, no mail goes to files"


@pytest.fixture(scope="module")
def mhttp(mail_system: SystemProcess, body_log: BodyLog) -> HttpClient:
    return HttpClient(mail_system.ports.auth, body_log, prefix="/v1")


def test_registration_mails_a_verification_token_that_works_once(
    mhttp: HttpClient, inbox: Inbox, mail_system: SystemProcess
) -> None:
    user = register(mhttp, "verify")
    mail = inbox.wait_for(user.email, "Confirm your email address")
    assert mail["From"] == "Accounts <accounts@example.com>"
    assert re.fullmatch(r"<[0-9a-f-]{36}\.verify@cqrs-users>", mail["Message-ID"])
    token = token_in(mail)
    done = mhttp.post("/verify-email/confirm", json_body={"token": token})
    assert done.status == 200, done.describe()
    assert done.json()["email"] == user.email
    again = mhttp.post("/verify-email/confirm", json_body={"token": token})
    assert (again.status, again.error) == (400, "token: invalid, expired or already used")
    access = login(mhttp, user.email, user.password, after=done.json()["position"])
    shown = mhttp.get(f"/users/{user.id}", token=access).json()["user"]
    assert shown["email_verified"] is True
    state = mhttp.on(mail_system.ports.store_http).get(
        f"/replay/user/{user.id}/state", token=access
    )
    assert state.json()["state"]["email_verified"] is True
    history = mhttp.on(mail_system.ports.store_http).get(
        f"/replay/user/{user.id}/history", token=access
    )
    steps = [(e["event"]["event_type"], e["changed_fields"]) for e in history.json()["entries"]]
    assert (
        "user.email.verified",
        ["version", "updated_at", "email_verified", "email_verified_at"],
    ) in steps


def test_an_email_change_needs_a_new_verification(mhttp: HttpClient, inbox: Inbox) -> None:
    user = register(mhttp, "verify-move")
    first = token_in(inbox.wait_for(user.email, "Confirm your email address"))
    access = login(mhttp, user.email, user.password, after=user.position)
    new_address = unique_email("verify-moved")
    moved = mhttp.put(f"/users/{user.id}/email", json_body={"new_email": new_address}, token=access)
    assert moved.status == 200, moved.describe()
    # The token for the old address is void; the new address gets its own.
    stale = mhttp.post("/verify-email/confirm", json_body={"token": first})
    assert stale.status == 400, stale.describe()
    second = token_in(inbox.wait_for(new_address, "Confirm your email address"))
    assert mhttp.post("/verify-email/confirm", json_body={"token": second}).status == 200


def test_a_verification_token_expires(mhttp: HttpClient, inbox: Inbox) -> None:
    user = register(mhttp, "verify-late")
    token = token_in(inbox.wait_for(user.email, "Confirm your email address"))
    time.sleep(TOKEN_TTL + 1)
    late = mhttp.post("/verify-email/confirm", json_body={"token": token})
    assert (late.status, late.code) == (400, "INVALID_ARGUMENT")


def test_a_reset_mail_sets_a_new_password_once_and_ends_every_session(
    mhttp: HttpClient, inbox: Inbox, mail_system: SystemProcess, grpcurl: Grpcurl
) -> None:
    user = register(mhttp, "reset")
    old = login(mhttp, user.email, user.password, after=user.position)
    asked = mhttp.post("/password-reset", json_body={"email": user.email.upper()})
    assert asked.status == 202, asked.describe()
    mail = inbox.wait_for(user.email, "Reset your password")
    assert re.fullmatch(r"<[0-9a-f-]{36}\.reset@cqrs-users>", mail["Message-ID"])
    token = token_in(mail)
    done = mhttp.post(
        "/password-reset/confirm", json_body={"token": token, "new_password": "ResetPass123!"}
    )
    assert done.status == 200, done.describe()
    # Every session ended: the old token is refused on HTTP and gRPC within a second.
    deadline = time.monotonic() + 1.0
    while mhttp.get(f"/users/{user.id}", token=old).status != 401:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    refused = grpcurl.run(
        mail_system.ports.query_grpc,
        "cqrs.query.v1.QueryService/GetUser",
        data={"id": user.id},
        token=old,
        check=False,
    )
    assert refused.status_code == 16 and "token revoked" in refused.stderr
    login(mhttp, user.email, "ResetPass123!", after=done.json()["position"])
    again = mhttp.post(
        "/password-reset/confirm", json_body={"token": token, "new_password": "Another123456!"}
    )
    assert (again.status, again.error) == (400, "token: invalid, expired or already used")
    # The request and the reset are events; their secrets are not shown.
    fresh = login(mhttp, user.email, "ResetPass123!", after=done.json()["position"])
    events = (
        mhttp.on(mail_system.ports.store_http)
        .get(f"/events/aggregate/{user.id}", token=fresh)
        .json()["events"]
    )
    by_type = {e["event_type"]: e["payload"] for e in events}
    requested = by_type["user.password_reset.requested"]
    assert requested["token_hash"] == requested["token_nonce"] == "[REDACTED]"
    assert by_type["user.password.reset"]["method"] == "token"
    assert token not in str(events)


def test_unknown_addresses_get_the_same_answer_and_no_mail(mhttp: HttpClient, inbox: Inbox) -> None:
    known = register(mhttp, "reset-known")
    unknown = unique_email("reset-unknown")
    for_known = mhttp.post("/password-reset", json_body={"email": known.email})
    for_unknown = mhttp.post("/password-reset", json_body={"email": unknown})
    assert (for_known.status, for_known.body) == (for_unknown.status, for_unknown.body)
    assert for_known.status == 202
    inbox.wait_for(known.email, "Reset your password")
    time.sleep(1.0)  # long after the known address got its mail
    assert inbox.to(unknown) == []
    malformed = mhttp.post("/password-reset", json_body={"email": "not-an-address"})
    assert (malformed.status, malformed.code) == (400, "INVALID_ARGUMENT")


def test_a_reset_token_expires(mhttp: HttpClient, inbox: Inbox) -> None:
    user = register(mhttp, "reset-late")
    assert mhttp.post("/password-reset", json_body={"email": user.email}).status == 202
    token = token_in(inbox.wait_for(user.email, "Reset your password"))
    time.sleep(TOKEN_TTL + 1)
    late = mhttp.post(
        "/password-reset/confirm", json_body={"token": token, "new_password": "LatePass12345!"}
    )
    assert late.status == 400, late.describe()
    login(mhttp, user.email, user.password)  # the password did not change


def test_reset_requests_are_rate_limited_per_address_alike(mhttp: HttpClient) -> None:
    for address in (register(mhttp, "reset-limit").email, unique_email("reset-limit-unknown")):
        answers = [
            mhttp.post("/password-reset", json_body={"email": address}, source="127.0.0.31")
            for _ in range(4)
        ]
        assert [a.status for a in answers] == [202, 202, 202, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        assert answers[-1].code == "RESOURCE_EXHAUSTED"


def test_make_up_writes_mail_to_files_without_smtp(
    e2e_system: SystemProcess, http: HttpClient
) -> None:
    """The default system (no SMTP_HOST) writes each mail as a file in its data folder."""
    user = register(http, "file-mail")
    deadline = time.monotonic() + 10
    while True:
        files = list(Path(e2e_system.mail_dir).glob("*.verify.eml"))
        texts = [f.read_text() for f in files]
        if any(f"To: {user.email}" in t for t in texts):
            break
        assert time.monotonic() < deadline, "no verification mail file"
        time.sleep(0.05)


def test_reset_over_grpc(
    mhttp: HttpClient, inbox: Inbox, mail_system: SystemProcess, grpcurl: Grpcurl
) -> None:
    user = register(mhttp, "reset-grpc")
    asked = grpcurl.call(
        mail_system.ports.query_grpc,
        "cqrs.query.v1.QueryService/RequestPasswordReset",
        {"email": user.email},
    )
    assert asked["message"].startswith("If the address belongs to an active account")
    token = token_in(inbox.wait_for(user.email, "Reset your password"))
    done = grpcurl.call(
        mail_system.ports.command_grpc,
        "cqrs.command.v1.CommandService/ConfirmPasswordReset",
        {"token": token, "newPassword": "GrpcMailReset1!"},
    )
    assert done["id"] == user.id
    verify = token_in(inbox.wait_for(user.email, "Confirm your email address"))
    verified = grpcurl.call(
        mail_system.ports.command_grpc,
        "cqrs.command.v1.CommandService/ConfirmEmailVerification",
        {"token": verify},
    )
    assert verified["email"] == user.email
    login(mhttp, user.email, "GrpcMailReset1!", after=int(verified["position"]))
