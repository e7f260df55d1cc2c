"""Small helpers the end-to-end tests share: users, tokens, times."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.e2e.http_client import HttpClient


def unique_email(label: str) -> str:
    """An address no other test (or earlier run on the same data) uses."""
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass(frozen=True, slots=True)
class User:
    """A registered user and the password it has now."""

    id: str
    email: str
    password: str
    position: int


def register(http: HttpClient, label: str, password: str = "SecurePass123!") -> User:
    """Registers a new user through POST /register (201)."""
    email = unique_email(label)
    answer = http.post("/register", json_body={"email": email, "password": password})
    assert answer.status == 201, answer.describe()
    body = answer.json()
    return User(id=body["id"], email=email, password=password, position=body["position"])


def login(http: HttpClient, email: str, password: str, *, after: int = 0) -> str:
    """A bearer token from POST /login (200).

    Login reads the read model: right after a command, pass the position it
    returned as ``after`` (sent as X-Min-Position) so that the login sees it.
    """
    headers = {"X-Min-Position": str(after)} if after else {}
    answer = http.post("/login", json_body={"email": email, "password": password}, headers=headers)
    assert answer.status == 200, answer.describe()
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as the gateway writes it (UTC, ``Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and ``Z``, e.g. ``2026-01-02T03:04:05.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def between(first: str, second: str) -> str:
    """The RFC 3339 time halfway between two event timestamps."""
    a, b = parse_time(first), parse_time(second)
    assert a < b, f"{first} is not before {second}"
    return rfc3339(a + (b - a) / 2)
