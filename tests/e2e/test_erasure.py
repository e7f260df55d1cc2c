"""Erasure by crypto-shredding, end to end, on both stacks (issue 14).

A user registers, logs in from a distinctive address, changes their email
and gets a snapshot; every read shows the addresses (decryption works).
After ``DELETE /users/{id}``: no store of the system holds either address or
the client address in clear (raw files on the embedded stack; every
ClickHouse table, the Kafka topic and every PostgreSQL table on the
production stack); every read shows ``[ERASED]`` where they were, with the
events themselves still there; the user's sessions are over; another user is
untouched; a second erasure changes nothing; the address can be registered
again. Someone who is neither the user nor an admin is refused on HTTP and
gRPC.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.http_client import HttpClient
from tests.e2e.stored_bytes import resting_hits
from tests.e2e.support import User, between, login, register, unique_email
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

ERASED = "[ERASED]"
ERASE = "cqrs.command.v1.CommandService/EraseUser"
PERMISSION_DENIED = 7
# A loopback address no other test logs in from, so finding it means this login.
CLIENT_ADDRESS = "127.0.41.97"


def _login_from(http: HttpClient, user: User, *, after: int) -> str:
    answer = http.post(
        "/login",
        json_body={"email": user.email, "password": user.password},
        headers={"X-Min-Position": str(after)},
        source=CLIENT_ADDRESS,
    )
    assert answer.status == 200, answer.describe()
    token: str = answer.json()["token"]
    return token


def _text(http: HttpClient, path: str, token: str, after: int) -> str:
    answer = http.get(path, token=token, headers={"X-Min-Position": str(after)})
    assert answer.status == 200, answer.describe()
    return answer.body.decode()


def test_erasure_shreds_personal_data_everywhere(
    http: HttpClient, e2e_system: SystemProcess, admin_token: str, grpcurl: Grpcurl
) -> None:
    user = register(http, "erase-me")
    other = register(http, "erase-keep")
    token = _login_from(http, user, after=user.position)
    new_email = unique_email("erase-moved")
    moved = http.put(f"/users/{user.id}/email", json_body={"new_email": new_email}, token=token)
    assert moved.status == 200, moved.describe()
    snap = http.post(f"/snapshots/{user.id}", json_body={}, token=admin_token)
    assert snap.status in {200, 201}, snap.describe()
    assert new_email in snap.body.decode()
    after = moved.json()["position"]
    history_path = f"/replay/user/{user.id}/history"
    before = _text(http, history_path, admin_token, after)
    assert user.email in before and new_email in before and CLIENT_ADDRESS in before
    logins_path = f"/users/{user.id}/logins"
    assert CLIENT_ADDRESS in _text(http, logins_path, admin_token, after)
    events_before = http.get(f"/events/aggregate/{user.id}", token=admin_token).json()

    # The scan sees what rests in clear (the read model holds the address for logins).
    assert resting_hits(e2e_system, [new_email]), "the scan found the live address nowhere"

    # Neither the user nor an admin: refused on both protocols, nothing erased.
    other_token = login(http, other.email, other.password, after=other.position)
    refused = http.delete(f"/users/{user.id}", token=other_token)
    assert refused.status == 403, refused.describe()
    denied = grpcurl.run(
        e2e_system.ports.command_grpc, ERASE, data={"id": user.id}, token=other_token, check=False
    )
    assert denied.status_code == PERMISSION_DENIED, denied.stderr

    erased = http.delete(f"/users/{user.id}", token=token)
    assert erased.status == 200, erased.describe()
    done = erased.json()
    assert done["id"] == user.id and done["position"] > after
    # Idempotent: an admin erasing again over gRPC appends nothing.
    again = grpcurl.call(e2e_system.ports.command_grpc, ERASE, {"id": user.id}, token=admin_token)
    assert again["version"] == done["version"], again
    # The erasure ended the user's sessions.
    assert http.get(f"/users/{user.id}", token=token).status == 401

    position = done["position"]
    needles = [user.email, new_email, CLIENT_ADDRESS]
    for path in (
        history_path,
        f"/events/aggregate/{user.id}",
        f"/replay/user/{user.id}/state",
        f"/snapshots/{user.id}",
        f"/snapshots/{user.id}/state",
        logins_path,
        f"/users/{user.id}",
        "/users?page_size=1000",
    ):
        text = _text(http, path, admin_token, position)
        assert not [n for n in needles if n in text], f"{path} still shows: {text[:600]}"
    history = http.get(history_path, token=admin_token).json()
    entries = history["entries"]
    assert len(entries) == done["version"]
    assert entries[-1]["event"]["event_type"] == "user.erased"
    assert entries[0]["event"]["payload"]["email"] == ERASED
    assert entries[0]["event"]["payload"]["password_hash"] == "[REDACTED]"
    assert all(e["state"]["email"] == ERASED for e in entries)
    events_after = http.get(f"/events/aggregate/{user.id}", token=admin_token).json()
    assert [e["version"] for e in events_after["events"]][: len(events_before["events"])] == [
        e["version"] for e in events_before["events"]
    ]
    first, last = entries[0]["event"]["timestamp"], entries[-1]["event"]["timestamp"]
    at = quote(between(first, last))
    state_at = _text(http, f"/replay/user/{user.id}/state-at?timestamp={at}", admin_token, 0)
    assert ERASED in state_at and not [n for n in needles if n in state_at]
    compare = _text(
        http,
        f"/replay/user/{user.id}/compare?time1={quote(first)}&time2={quote(last)}",
        admin_token,
        0,
    )
    assert not [n for n in needles if n in compare], compare[:600]
    listed = http.get(f"/users/{user.id}", token=admin_token).json()
    assert listed["user"]["email"] == ERASED and listed["user"]["status"] == "erased", listed

    # Another user is untouched.
    kept = _text(http, f"/replay/user/{other.id}/history", admin_token, position)
    assert other.email in kept
    assert login(http, other.email, other.password)

    # Nothing at rest holds the addresses in clear, on either stack.
    assert resting_hits(e2e_system, needles) == []

    # The address is free again: anyone may register it.
    again_registered = http.post(
        "/register", json_body={"email": new_email, "password": "SecurePass123!"}
    )
    assert again_registered.status == 201, again_registered.describe()
    assert again_registered.json()["id"] != user.id
