"""Erasure survives a restart, on both stacks (issue 14).

A user logs in from a distinctive address and is erased; the whole system
stops and starts again on the same data folder and databases. Afterwards
every read still shows the user's personal fields as ``[ERASED]`` (nothing
was decrypted again from a key that came back, nothing re-projected in
clear), no store holds the addresses (raw files with their WAL on the
embedded stack; ClickHouse, Kafka and PostgreSQL on the production stack),
another user is intact and logs in, and the erased address can be
registered again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.conftest import drop_production_data
from tests.e2e.http_client import HttpClient
from tests.e2e.stored_bytes import resting_hits
from tests.e2e.support import login, register
from tests.e2e.system_process import (
    MODES,
    SystemProcess,
    production_available,
    restart_system,
    start_system,
)

pytestmark = pytest.mark.e2e

ERASED = "[ERASED]"
# A loopback address no other test logs in from, so finding it means this login.
CLIENT_ADDRESS = "127.0.41.98"


@pytest.fixture(params=MODES)
def system(
    request: pytest.FixtureRequest, tmp_path: Path, body_log: BodyLog
) -> Iterator[list[SystemProcess]]:
    """The running system (one item: the test replaces it when it restarts it)."""
    mode = str(request.param)
    if mode == "production" and not production_available(dict(os.environ)):
        pytest.skip("ClickHouse/PostgreSQL/Kafka not configured (make test sets them)")
    running = [start_system(tmp_path, body_log, mode=mode)]
    try:
        yield running
    finally:
        running[-1].stop()
        if mode == "production":
            asyncio.run(drop_production_data(running[-1].env))


def _erased_everywhere(http: HttpClient, user_id: str, needles: list[str], admin: str) -> None:
    for path in (
        f"/users/{user_id}",
        f"/users/{user_id}/logins",
        f"/replay/user/{user_id}/history",
        f"/events/aggregate/{user_id}",
        f"/replay/user/{user_id}/state",
    ):
        answer = http.get(path, token=admin)
        assert answer.status == 200, answer.describe()
        text = answer.body.decode()
        assert not [n for n in needles if n in text], f"{path} shows: {text[:600]}"
    listed = http.get(f"/users/{user_id}", token=admin).json()
    assert listed["user"]["email"] == ERASED and listed["user"]["status"] == "erased", listed
    history = http.get(f"/replay/user/{user_id}/history", token=admin).json()
    assert history["entries"][0]["event"]["payload"]["email"] == ERASED


def test_erasure_survives_a_restart(system: list[SystemProcess], body_log: BodyLog) -> None:
    first = system[0]
    http = HttpClient(first.ports.auth, body_log, prefix="/v1")
    user, other = register(http, "restart-erased"), register(http, "restart-kept")
    answer = http.post(
        "/login",
        json_body={"email": user.email, "password": user.password},
        headers={"X-Min-Position": str(user.position)},
        source=CLIENT_ADDRESS,
    )
    assert answer.status == 200, answer.describe()
    erased = http.delete(f"/users/{user.id}", token=answer.json()["token"])
    assert erased.status == 200, erased.describe()
    position = erased.json()["position"]
    admin = login(http, first.admin_email, first.admin_password, after=position)
    needles = [user.email, CLIENT_ADDRESS]
    _erased_everywhere(http, user.id, needles, admin)

    assert first.stop() == 0, first.log_tail()
    system.append(restart_system(first, body_log))
    http = HttpClient(system[-1].ports.auth, body_log, prefix="/v1")
    admin = login(http, first.admin_email, first.admin_password, after=position)

    _erased_everywhere(http, user.id, needles, admin)
    assert resting_hits(system[-1], needles) == []
    kept = http.get(f"/replay/user/{other.id}/history", token=admin)
    assert kept.status == 200 and other.email in kept.body.decode(), kept.describe()
    assert login(http, other.email, other.password)
    again = http.post("/register", json_body={"email": user.email, "password": "SecurePass123!"})
    assert again.status == 201, again.describe()
    assert again.json()["id"] != user.id
