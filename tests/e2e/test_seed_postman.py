"""The seed's own Postman collection, run with newman, with only a bearer token added.

``fixtures/seed_postman_collection.json`` is the seed's collection, byte for
byte. The run uses a copy with two changes, and no other:

- a collection-level bearer token ``{{jwt_token}}``: the variable the
  collection's own Login script saves (every request inherits it; Postman
  sends no header while the variable is empty);
- the collection's own Login request runs first among the requests that
  need a token: right after Register User, which creates the user it logs
  in (it would otherwise run after Change Password and Change Email, which
  the seed never applied but this system does).

Expected, per request: what the seed answers with 2xx answers 2xx here;
the admin-only listings (``GET /users``, ``/events``, ``/events/count``,
``/events/replay``) are 403 with a user's token; the requests at the
collection's hard-coded 2025 timestamps (state-at twice, compare) are 404,
as in the seed, since the users were created later. The seed's Change
Password failed (its defect); here it succeeds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.postman_collection import run_newman
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

SEED_COLLECTION = Path(__file__).parent / "fixtures" / "seed_postman_collection.json"
BEARER = {
    "type": "bearer",
    "bearer": [{"key": "token", "value": "{{jwt_token}}", "type": "string"}],
}

# (folder prefix, request name, HTTP status), in the order the run sends them.
EXPECTED: list[tuple[str, str, int]] = [
    ("🔐 Auth", "Health Check", 200),
    ("🔐 Auth", "Register User", 201),
    ("🔐 Auth", "Login", 200),  # the Query folder's Login, moved (see the docstring)
    ("🔐 Auth", "Change Password", 200),
    ("🔐 Auth", "Change Email", 200),
    ("🔍 Query", "Health Check", 200),
    ("🔍 Query", "Get All Users", 403),  # admin-only, a user's token
    ("📦 Event Store", "Health Check", 200),
    ("📦 Event Store", "Get All Events", 403),  # admin-only
    ("📦 Event Store", "Get Events by Aggregate", 200),
    ("📦 Event Store", "Get Event Count", 403),  # admin-only
    ("📦 Event Store", "Replay Events Since", 403),  # admin-only
    ("⏰ Time Travel", "Get Current User State", 200),
    ("⏰ Time Travel", "Get User State at Point in Time", 404),  # 2025-10-25
    ("⏰ Time Travel", "Get User History", 200),
    ("⏰ Time Travel", "Compare States Between Two Times", 404),  # 2025-10-25
    ("📸 Snapshots", "Create Snapshot", 201),
    ("📸 Snapshots", "Get Latest Snapshot", 200),
    ("📸 Snapshots", "Get Aggregate State (with Snapshot)", 200),
    ("🎯 Complete", "1. Register User", 201),
    ("🎯 Complete", "2. Wait 2 seconds", 200),
    ("🎯 Complete", "3. Login", 200),
    ("🎯 Complete", "4. Change Password (gRPC Demo!)", 200),
    ("🎯 Complete", "5. View Event History", 200),
    ("🎯 Complete", "6. Time Travel - See State Before Password Change", 404),  # 2025
    ("🎯 Complete", "7. Create Snapshot", 201),
]


def run_copy(seed: dict[str, Any]) -> dict[str, Any]:
    """The seed's collection plus a collection-level bearer token, its Login run first."""
    collection = copy.deepcopy(seed)
    collection["auth"] = BEARER
    auth, query = collection["item"][0]["item"], collection["item"][1]["item"]
    login = next(item for item in query if item["name"] == "Login")
    query.remove(login)
    auth.insert(
        1 + next(i for i, item in enumerate(auth) if item["name"] == "Register User"), login
    )
    return collection


def test_the_run_copy_adds_only_the_token_and_moves_only_login() -> None:
    seed = json.loads(SEED_COLLECTION.read_text())
    ran = run_copy(seed)
    assert ran["auth"] == BEARER and "auth" not in seed

    def flat(c: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted((i for f in c["item"] for i in f["item"]), key=json.dumps)

    assert flat(ran) == flat(seed)  # the same 26 requests, untouched
    assert [i["name"] for i in ran["item"][0]["item"]][:3] == [
        "Health Check",
        "Register User",
        "Login",
    ]
    assert len(EXPECTED) == sum(len(f["item"]) for f in seed["item"]) == 26


@pytest.fixture(scope="module")
def seed_newman_report(
    e2e_system: SystemProcess, body_log: BodyLog, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("seed-newman")
    collection = folder / "seed_run.postman_collection.json"
    collection.write_text(json.dumps(run_copy(json.loads(SEED_COLLECTION.read_text()))))
    ports = e2e_system.ports
    urls = {
        "auth_service_url": f"http://127.0.0.1:{ports.auth}",
        "query_service_url": f"http://127.0.0.1:{ports.query}",
        "event_store_url": f"http://127.0.0.1:{ports.store_http}",
    }
    return run_newman(collection, urls, body_log=body_log, folder=folder, label="newman seed")


def _body(execution: dict[str, Any]) -> Any:
    return json.loads(bytes(execution["response"]["stream"]["data"]))


def test_newman_runs_the_seeds_collection_with_only_a_token_added(
    seed_newman_report: dict[str, Any],
) -> None:
    run = seed_newman_report["run"]
    assert run["failures"] == []
    assert run["stats"]["requests"] == {"total": 26, "pending": 0, "failed": 0}
    executions = run["executions"]
    got = [(e["item"]["name"], e["response"]["code"]) for e in executions]
    assert got == [(name, status) for _, name, status in EXPECTED]
    for execution, (_, name, status) in zip(executions, EXPECTED, strict=True):
        body = _body(execution)
        if status >= 400:
            # The seed's error shape: {"error": "..."} (our code beside it).
            assert isinstance(body["error"], str), (name, body)
            expected = "PERMISSION_DENIED" if status == 403 else "NOT_FOUND"
            assert body["code"] == expected, (name, body)


def test_the_collections_scripts_saved_what_the_seed_would(
    seed_newman_report: dict[str, Any],
) -> None:
    # The last execution of a name wins: "Health Check" is the event store's.
    by_name = {e["item"]["name"]: e for e in seed_newman_report["run"]["executions"]}
    registered = _body(by_name["Register User"])
    logged_in = _body(by_name["Login"])
    # POST /login answers the seed's user_id, which the Login script saves.
    assert logged_in["user_id"] == registered["id"]
    assert logged_in["email"] == "john.doe@example.com"
    assert isinstance(logged_in["token"], str)
    events = _body(by_name["Get Events by Aggregate"])
    assert events["aggregate_id"] == registered["id"]
    assert [e["event_type"] for e in events["events"]] == [
        "user.created",
        "user.login.recorded",
        "user.password.changed",
        "user.email.changed",
    ]
    assert all(isinstance(e["payload"], str) for e in events["events"])
    assert json.loads(events["events"][0]["payload"])["password_hash"] == "[REDACTED]"
    state = _body(by_name["Get Current User State"])
    assert (state["state"]["email"], state["state"]["status"]) == ("jane.doe@example.com", "active")
    health = _body(by_name["Health Check"])
    assert isinstance(health["total_events"], int)
