"""The OpenAPI document as generators see it: it validates, and a client generated from it
(openapi-python-client, at test time into a temporary folder) runs the quickstart flow
over HTTP: register, log in, change the email, read the state at a time."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.e2e.http_client import HttpClient
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

PACKAGE = "cqrs_users_rest_gateway_client"


def test_the_served_document_validates(http: HttpClient) -> None:
    answer = http.root.get("/openapi.json")
    assert answer.status == 200, answer.describe()
    document = answer.json()
    validate(document)
    register = document["paths"]["/v1/register"]["post"]
    assert register["security"] == []
    assert register["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegisterRequest"
    }
    assert document["components"]["schemas"]["RegisterRequest"]["required"] == [
        "email",
        "password",
    ]
    assert document["paths"]["/v1/users/{id}/email"]["put"]["security"] == [{"bearerAuth": []}]


@pytest.fixture(scope="module")
def generated(http: HttpClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client openapi-python-client generates from the running gateway's document."""
    folder = tmp_path_factory.mktemp("openapi-client")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(http.root.get("/openapi.json").json()))
    tool = Path(sys.executable).with_name("openapi-python-client")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [str(tool), "generate", "--path", str(spec), "--output-path", str(folder / "client")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Only the NDJSON streams are beyond the generator (it says so and leaves them out).
    warnings = [line for line in run.stdout.splitlines() if line.startswith("WARNING parsing")]
    assert all("subscribe" in w or "rebuild-read-model" in w for w in warnings), run.stdout
    sys.path.insert(0, str(folder / "client"))
    try:
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]  # a package generated for the other mode's run
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder / "client"))


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_runs_the_quickstart_flow(
    generated: ModuleType, e2e_system: SystemProcess
) -> None:
    base = f"http://127.0.0.1:{e2e_system.ports.auth}"
    models = _module("models")
    register = _module("api.command_service.command_service_register")
    change_email = _module("api.command_service.command_service_change_email")
    login = _module("api.query_service.query_service_login")
    get_user = _module("api.query_service.query_service_get_user")
    state_at = _module("api.event_store_service.event_store_service_get_state_at")
    email = f"openapi-{uuid.uuid4().hex[:10]}@example.com"
    password = "SecurePass123!"

    anonymous = generated.Client(base_url=base)
    refused = register.sync_detailed(
        client=anonymous, body=models.RegisterRequest(email="not-an-email", password="x")
    )
    assert refused.status_code == 400
    assert {v.field for v in refused.parsed.violations} == {"email", "password"}

    created = register.sync(client=anonymous, body=models.RegisterRequest(email, password))
    assert isinstance(created, models.RegisterResponse), created
    session = login.sync(
        client=anonymous,
        body=models.LoginRequest(email=email, password=password),
        x_min_position=created.position,
    )
    assert isinstance(session, models.LoginResponse), session
    assert session.user.status == models.UserStatus.ACTIVE
    before = datetime.now(UTC)

    user = generated.AuthenticatedClient(base_url=base, token=session.token)
    new_email = f"moved-{uuid.uuid4().hex[:10]}@example.com"
    changed = change_email.sync(
        uuid.UUID(created.id), client=user, body=models.ChangeEmailRequestBody(new_email)
    )
    assert isinstance(changed, models.ChangeEmailResponse), changed
    assert changed.email == new_email

    then = state_at.sync(uuid.UUID(created.id), client=user, timestamp=before)
    now = state_at.sync(uuid.UUID(created.id), client=user, timestamp=datetime.now(UTC))
    assert isinstance(then, models.GetStateAtResponse), then
    assert isinstance(now, models.GetStateAtResponse), now
    assert (then.state.email, then.state.version) == (email, 2)  # created, logged in
    assert (now.state.email, now.state.version) == (new_email, 3)

    read = get_user.sync(uuid.UUID(created.id), client=user, min_position=changed.position)
    assert isinstance(read, models.GetUserResponse), read
    assert read.user.email == new_email

    stranger = get_user.sync_detailed(uuid.UUID(created.id), client=anonymous)
    assert stranger.status_code == 401
