"""login: credentials, uniform failures, rate limiting, token, best-effort recording."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from query_svc.login import INVALID_CREDENTIALS, LoginService
from query_svc.login_attempts import Reservation, TooManyAttempts
from query_svc.read_model import AuthRecord, UserView
from query_svc.sessions import Opened, SessionRow
from service_kit.errors import ServiceError
from service_kit.passwords import PasswordHasher
from tests.auth_support import TEST_TOKENS, signer

pytestmark = pytest.mark.unit

NOW = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
VERIFIER = TEST_TOKENS.verifier()
PASSWORD = "correct horse battery"
USER_ID = "6f1c1f4e-2a43-4b0e-9a0d-3c1b1f0e9a11"


@dataclass
class FakeAttempts:
    """At most ``limit`` unsettled-or-failed attempts per email; the policy itself is
    ``query_svc.login_attempts``'s (tested on real databases in the integration suite)."""

    limit: int = 3
    counted: dict[str, int] = field(default_factory=dict)
    settled: list[tuple[str, str]] = field(default_factory=list)

    async def reserve(self, *, email: str, address: str) -> Reservation:
        if self.counted.get(email, 0) >= self.limit:
            raise TooManyAttempts(60, "login.pair")
        self.counted[email] = self.counted.get(email, 0) + 1
        return Reservation(id=len(self.settled), email=email, address=address)

    async def failed(self, attempt: Reservation) -> None:
        self.settled.append((attempt.email, "failed"))

    async def succeeded(self, attempt: Reservation) -> bool:
        self.counted[attempt.email] -= 1
        repeat = (attempt.email, "ok") in self.settled
        self.settled.append((attempt.email, "ok"))
        return not repeat


@dataclass
class FakeReads:
    auth: dict[str, AuthRecord] = field(default_factory=dict)
    users: dict[str, UserView] = field(default_factory=dict)

    async def auth_by_email(self, email: str) -> AuthRecord | None:
        return self.auth.get(email)

    async def get_user(self, user_id: str) -> UserView | None:
        return self.users.get(user_id)


@dataclass
class FakeRecorder:
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    error: Exception | None = None

    async def record_login(
        self, *, user_id: str, client_address: str, correlation_id: str = ""
    ) -> int:
        self.calls.append((user_id, client_address, correlation_id))
        if self.error is not None:
            raise self.error
        return 42


@dataclass
class FakeSessions:
    opened: list[SessionRow] = field(default_factory=list)
    refresh_ttl: timedelta = timedelta(days=1)

    async def open(self, *, user_id: str, cv: int, client_address: str) -> Opened:
        row = SessionRow(
            id=f"session-{len(self.opened)}",
            user_id=user_id,
            cv=cv,
            created_at=NOW,
            last_refreshed_at=None,
            expires_at=NOW + self.refresh_ttl,
            revoked_at=None,
            revoked_reason="",
            client_address=client_address,
        )
        self.opened.append(row)
        return Opened(row, f"refresh-{len(self.opened)}")


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(4)
        self.verifies = 0
        self.dummies = 0

    async def verify(self, plain: str, hashed: str) -> bool:
        self.verifies += 1
        return await super().verify(plain, hashed)

    async def dummy_verify(self) -> None:
        self.dummies += 1
        await super().dummy_verify()


@dataclass
class World:
    reads: FakeReads
    recorder: FakeRecorder
    hasher: CountingHasher
    service: LoginService


@pytest.fixture
async def world() -> AsyncIterator[World]:
    hasher = CountingHasher()
    hashed = await hasher.hash(PASSWORD)
    reads = FakeReads()
    reads.auth["alice@example.com"] = AuthRecord(
        user_id=USER_ID,
        email="alice@example.com",
        role="admin",
        status="active",
        credential_version=7,
        password_hash=hashed,
    )
    reads.users[USER_ID] = UserView(
        id=USER_ID,
        email="alice@example.com",
        role="admin",
        status="active",
        version=1,
        created_at=NOW,
        updated_at=NOW,
        last_login_at=None,
        login_count=0,
        deactivated_at=None,
        email_verified=False,
    )
    recorder = FakeRecorder()
    service = LoginService(
        read_model=reads,
        hasher=hasher,
        codec=signer(),
        sessions=FakeSessions(),
        attempts=FakeAttempts(),
        recorder=recorder,
        clock=lambda: datetime.now(UTC),
    )
    try:
        yield World(reads, recorder, hasher, service)
    finally:
        hasher.close()


async def test_success_issues_a_token_for_the_user_and_records_the_login(world: World) -> None:
    result = await world.service.login(
        email="  Alice@Example.COM ",
        password=PASSWORD,
        client_address="10.1.1.1",
        correlation_id="corr-1",
    )
    principal = VERIFIER.decode(result.token)
    assert (principal.subject, principal.email, principal.role) == (
        USER_ID,
        "alice@example.com",
        "admin",
    )
    # The token names its session and the credential version it was issued under.
    assert (principal.session_id, principal.credential_version) == (result.session_id, 7)
    assert result.refresh_token == "refresh-1" and result.refresh_expires_in == 86_400
    assert result.expires_in == TEST_TOKENS.ttl_seconds
    assert result.user.id == USER_ID
    assert world.recorder.calls == [(USER_ID, "10.1.1.1", "corr-1")]


async def _fails(world: World, email: str, password: str, address: str = "10.1.1.1") -> None:
    with pytest.raises(ServiceError) as exc:
        await world.service.login(email=email, password=password, client_address=address)
    assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert exc.value.message == INVALID_CREDENTIALS


async def test_every_failure_looks_the_same_and_costs_one_bcrypt(world: World) -> None:
    await _fails(world, "alice@example.com", "wrong password")
    await _fails(world, "nobody@example.com", PASSWORD, address="10.1.1.2")
    await _fails(world, "not an email", PASSWORD, address="10.1.1.3")
    await _fails(world, "alice@example.com", "x" * 10_000, address="10.1.1.4")
    assert world.hasher.dummies == 3
    assert world.hasher.verifies - world.hasher.dummies == 1  # dummy_verify calls verify
    assert world.recorder.calls == []


async def test_a_deactivated_account_cannot_log_in(world: World) -> None:
    record = world.reads.auth["alice@example.com"]
    world.reads.auth["alice@example.com"] = AuthRecord(
        user_id=record.user_id,
        email=record.email,
        role=record.role,
        status="deactivated",
        credential_version=record.credential_version,
        password_hash=record.password_hash,
    )
    await _fails(world, "alice@example.com", PASSWORD)
    assert world.hasher.verifies == 1  # checked anyway: timing says nothing


@pytest.mark.parametrize(
    ("email", "password", "field"), [(" ", "x", "email"), ("a@b.io", "", "password")]
)
async def test_missing_fields_are_invalid_argument(
    world: World, email: str, password: str, field: str
) -> None:
    with pytest.raises(ServiceError) as exc:
        await world.service.login(email=email, password=password, client_address="")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.message.startswith(f"{field}:")


async def test_an_attempt_is_counted_before_any_hashing(world: World) -> None:
    for _ in range(3):
        await _fails(world, "alice@example.com", "wrong password")
    verifies = world.hasher.verifies
    with pytest.raises(TooManyAttempts) as exc:
        await world.service.login(
            email="ALICE@example.com", password=PASSWORD, client_address="10.9.9.9"
        )
    assert exc.value.retry_after == 60
    assert "retry in" in str(exc.value)
    assert world.hasher.verifies == verifies


async def test_a_repeat_login_is_not_recorded_again(world: World) -> None:
    for _ in range(2):
        result = await world.service.login(
            email="alice@example.com", password=PASSWORD, client_address="10.1.1.1"
        )
        assert result.token
    assert world.recorder.calls == [(USER_ID, "10.1.1.1", "")]


async def test_login_succeeds_when_recording_fails(world: World) -> None:
    world.recorder.error = RuntimeError("command_svc down")
    result = await world.service.login(
        email="alice@example.com", password=PASSWORD, client_address=""
    )
    assert result.token
    assert len(world.recorder.calls) == 1
