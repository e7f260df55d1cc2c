"""The Postman collection: valid v2.1, the seed's 26 requests, real routes, and it runs.

The structure is checked in Python against the gateway's descriptor-driven
route table; the run uses newman (the Postman CLI, a devDependency in
package.json), which executes the collection's own pre-request and test
scripts against the live system, so the variables those scripts save
(ids, tokens, positions, times) are what the later requests use.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from gateway.path_template import parse
from gateway.profiles import ServedRoute, served_routes
from gateway.router import Entry, RouteTable
from gateway.routes import load_routes
from service_kit import descriptors
from tests.e2e.body_log import BodyLog
from tests.e2e.postman_collection import (
    BASE_VARIABLES,
    COLLECTION,
    FOLDERS,
    SCHEMA_V21,
    PostmanRequest,
    load,
    requests,
    run_newman,
    substitute,
    variables_in,
)
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

PUBLIC = {("GET", "/health"), ("POST", "/v1/register"), ("POST", "/v1/login")}
ADMIN_ONLY = {
    f"/v1{path}"
    for path in ("/users", "/events", "/events/count", "/events/replay", "/replay/users/state-at")
}


def _route_table() -> RouteTable[ServedRoute | None]:
    served = served_routes(load_routes(descriptors.descriptor_set(), descriptors.pool()))
    table: RouteTable[ServedRoute | None] = RouteTable(Entry(s.verb, s.template, s) for s in served)
    table.add(Entry("GET", parse("/health"), None))  # the gateway's own route
    return table


def _sample_values() -> dict[str, str]:
    """A plausible value for every variable, to resolve paths and parse bodies."""
    values = {name: f"value-of-{name}" for name in variables_in(COLLECTION.read_text())}
    values.update(BASE_VARIABLES)
    values.update(user_id=str(uuid.uuid4()), position="7", email="a@example.com")
    values.update(new_email="b@example.com", password="password-1", new_password="password-2")
    return values


def test_it_is_a_v21_collection_with_the_seeds_folders() -> None:
    collection = load()
    assert collection["info"]["schema"] == SCHEMA_V21
    assert collection["info"]["name"] == "CQRS-EventSourcing"
    assert [folder["name"] for folder in collection["item"]] == list(FOLDERS)
    for folder in collection["item"]:
        assert len(folder["item"]) == FOLDERS[folder["name"]], folder["name"]
        assert all("request" in item for item in folder["item"]), "no nested folders"
    assert len(requests(collection)) == 26
    defaults = {v["key"]: v["value"] for v in collection["variable"]}
    for name, value in BASE_VARIABLES.items():
        assert defaults[name] == value
    for name in ("user_id", "token", "admin_token"):
        assert name in defaults
    # Every variable a request or script uses is declared on the collection.
    assert variables_in(COLLECTION.read_text()) <= set(defaults)


def test_times_are_computed_at_run_time_not_hard_coded() -> None:
    text = COLLECTION.read_text()
    assert not re.search(r"20\d\d-\d\d-\d\d", text), "a hard-coded date"
    scripts = " ".join(s for r in requests(load()) for s in r.scripts.values())
    assert "new Date(" in scripts
    assert "pm.collectionVariables.set('t_between'" in scripts


@pytest.mark.parametrize("request_", requests(load()), ids=lambda r: r.label)
def test_each_request_targets_a_real_route(request_: PostmanRequest) -> None:
    values = _sample_values()
    path = substitute(request_.path, values)
    resolved = _route_table().resolve(request_.method, path)
    served = resolved.target
    key = (request_.method, resolved.template.text)
    # Our collection speaks our API: /v1, our shapes (the gateway's /health aside).
    assert served is None or served.profile == "v1", key
    # The Authorization header is there exactly where the route needs a token.
    authorization = request_.headers.get("Authorization")
    if key in PUBLIC:
        assert authorization is None
    else:
        expected = "admin_token" if resolved.template.text in ADMIN_ONLY else "token"
        assert authorization == f"Bearer {{{{{expected}}}}}"
    assert "test" in request_.scripts and "pm.test(" in request_.scripts["test"]
    if served is None:
        return
    route = served.route
    # Query parameters and body fields are fields of the RPC's request.
    fields = set(route.rpc.input.fields_by_name)
    assert {name for name, _ in request_.query} <= fields
    if request_.body is not None:
        assert route.body == "*"
        assert request_.headers.get("Content-Type") == "application/json"
        body: dict[str, Any] = json.loads(substitute(request_.body, values))
        assert set(body) <= fields


@pytest.fixture(scope="module")
def newman_report(
    e2e_system: SystemProcess, body_log: BodyLog, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    ports = e2e_system.ports
    overrides = {
        "auth_url": f"http://127.0.0.1:{ports.auth}",
        "query_url": f"http://127.0.0.1:{ports.query}",
        "store_url": f"http://127.0.0.1:{ports.store_http}",
        "admin_email": e2e_system.admin_email,
        "admin_password": e2e_system.admin_password,
    }
    folder = tmp_path_factory.mktemp("newman")
    return run_newman(COLLECTION, overrides, body_log=body_log, folder=folder, label="newman")


def test_newman_runs_the_collection_against_the_live_system(
    newman_report: dict[str, Any],
) -> None:
    run = newman_report["run"]
    assert run["failures"] == []
    assert run["stats"]["items"] == {"total": 26, "pending": 0, "failed": 0}
    # The 26 requests plus the two logins the scripts send (the admin's, and
    # the new user's after Register in Auth Service).
    assert run["stats"]["requests"] == {"total": 28, "pending": 0, "failed": 0}
    assert run["stats"]["assertions"]["failed"] == 0
    assert run["stats"]["assertions"]["total"] >= 30
    assert run["stats"]["testScripts"]["failed"] == 0
    assert run["stats"]["prerequestScripts"]["failed"] == 0
    # The JSON report lists an execution once more for each request its
    # script sent; one per id is the collection's own requests, in order.
    executions = list({e["id"]: e for e in run["executions"]}.values())
    assert [e["item"]["name"] for e in executions] == [r.name for r in requests(load())]
    statuses = [e["response"]["code"] for e in run["executions"]]
    assert all(200 <= code < 300 for code in statuses), statuses
