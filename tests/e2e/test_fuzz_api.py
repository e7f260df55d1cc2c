"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis).

Every operation of ``/openapi.json`` gets generated requests, valid and
invalid, as a user and as an admin, against a system of its own (the fuzzer
registers, deactivates and rebuilds what it likes). Each response must
- never be a 5xx but a documented 503 (a user's mistake is a 4xx),
- have a status code, content type, headers and body the document states.

Bounded: a few examples per operation and no shrinking, so the whole
module takes a couple of minutes at most (``FUZZ_EXAMPLES`` raises it for a
deeper run by hand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from tests.e2e.body_log import BodyLog
from tests.e2e.http_client import HttpClient
from tests.e2e.support import login, register
from tests.e2e.system_process import SystemProcess, start_system

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))


@schemathesis.check
def no_undocumented_server_error(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> bool:
    """A 5xx only where the document promises it: a 503 (a dependency or the read
    model not there yet), never a 500 for what a caller sent."""
    status = response.status_code
    documented = str(status) in case.operation.definition.raw.get("responses", {})
    if status >= 500 and not (status == 503 and documented):
        raise AssertionError(f"server error {status}: {response.text[:300]}")
    return True


CHECKS = [
    no_undocumented_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_system(
    tmp_path_factory: pytest.TempPathFactory, body_log: BodyLog
) -> Iterator[SystemProcess]:
    system = start_system(
        tmp_path_factory.mktemp("e2e-fuzz"),
        body_log,
        # Generous budgets: the fuzzer is one client sending many requests.
        extra_env={"LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000"},
    )
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def fuzz_http(fuzz_system: SystemProcess, body_log: BodyLog) -> HttpClient:
    return HttpClient(fuzz_system.ports.auth, body_log, prefix="/v1")


@pytest.fixture(scope="module")
def api_schema(fuzz_system: SystemProcess) -> Any:
    base = f"http://127.0.0.1:{fuzz_system.ports.auth}"
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


@pytest.fixture(scope="module")
def tokens(fuzz_system: SystemProcess, fuzz_http: HttpClient) -> dict[str, str]:
    user = register(fuzz_http, "fuzzed")
    return {
        "user": login(fuzz_http, user.email, user.password, after=user.position),
        "admin": login(fuzz_http, fuzz_system.admin_email, fuzz_system.admin_password),
    }


BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _streams(definition: dict[str, Any]) -> bool:
    return any(
        "ndjson" in content_type
        for answer in definition.get("responses", {}).values()
        for content_type in answer.get("content", {})
    )


def _fuzz(schema: Any, system: SystemProcess, token: str) -> tuple[int, list[str]]:
    """Every operation, fuzzed: how many, and the failures found, one line each."""
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if _streams(operation.definition.raw):
            continue  # an NDJSON stream may never end; tests/e2e cover them with a reader

        @BOUNDED
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=f"http://127.0.0.1:{system.ports.auth}",
                headers={"Authorization": f"Bearer {token}"},
                checks=CHECKS,
                timeout=30,
            )

        fuzzed += 1
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # each operation's failure is reported
            first = [line for line in str(exc).strip().splitlines() if line.strip()]
            failures.append(f"{operation.label}: {' | '.join(first[:14])}")
    return fuzzed, failures


@pytest.mark.parametrize("who", ["user", "admin"])
def test_no_server_error_and_the_document_holds(
    who: str, api_schema: Any, tokens: dict[str, str], fuzz_system: SystemProcess
) -> None:
    fuzzed, failures = _fuzz(api_schema, fuzz_system, tokens[who])
    assert fuzzed >= 50, fuzzed  # the document's operations, not an empty list
    assert not failures, "\n".join(failures)
