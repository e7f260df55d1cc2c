"""The gateway in front of real gRPC servers with canned answers.

Covers transcoding, header forwarding, the status mapping, NDJSON streams,
the gateway's own /health and /openapi.json, and every way a caller's
mistake must come back as a 4xx JSON answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway import app as gateway_app
from service_kit import readiness

from .client import fetch, raw_exchange, read_lines
from .conftest import Fakes, Running, bearer, gateway_settings

pytestmark = pytest.mark.integration

JSON_BODY = {"Content-Type": "application/json"}


def assert_error(reply_json: dict[str, Any], code: str, fragment: str) -> None:
    assert {"error", "code"} <= set(reply_json) <= {"error", "code", "violations"}
    assert reply_json["code"] == code
    assert fragment in reply_json["error"]
    if code == "INVALID_ARGUMENT":  # every 400 of the gateway names its fields
        violations = reply_json["violations"]
        assert violations and all(set(v) == {"field", "description"} for v in violations)
        named = "; ".join(f"{v['field']}: {v['description']}" for v in violations)
        assert named == reply_json["error"]


# --- success paths ------------------------------------------------------------------


async def test_register_is_201_with_numbers_as_numbers(gateway: Running, fakes: Fakes) -> None:
    reply = await fetch(
        f"{gateway.v1}/register",
        method="POST",
        # No Content-Type, as in the seed's curl lines (urllib sends form-urlencoded).
        body=b'{"email":"john@example.com","password":"SecurePass123!"}',
    )
    assert reply.status == 201
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "id": "u-1",
        "message": "User john@example.com registered successfully",
        "version": 1,
        "position": 2**40 + 5,
    }


async def test_every_route_is_served_on_every_port(gateway: Running) -> None:
    assert len(gateway.urls) == 3
    assert len(set(gateway.gateway.ports)) == 3
    for url in gateway.urls:
        reply = await fetch(f"{url}/v1/users", headers=bearer("admin-1", "admin"))
        assert reply.status == 200
        assert reply.json()["count"] == 2


async def test_headers_are_forwarded_as_metadata(gateway: Running, fakes: Fakes) -> None:
    headers = {
        **bearer("u-9", "user"),
        "X-Correlation-Id": "corr-123",
        "Idempotency-Key": "idem-456",
        "X-Min-Position": "17",
        "X-Forwarded-For": "6.6.6.6",  # not trusted: the gateway says who connected
    }
    reply = await fetch(f"{gateway.v1}/users/u-9", headers=headers)
    assert reply.status == 200
    assert reply.headers["x-correlation-id"] == "corr-123"
    seen = fakes.query.seen["GetUser"][-1]
    assert seen["authorization"] == headers["Authorization"]
    assert seen["x-correlation-id"] == "corr-123"
    assert seen["idempotency-key"] == "idem-456"
    assert seen["x-min-position"] == "17"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    remaining = fakes.query.deadlines["GetUser"][-1]
    assert remaining is not None and 0 < remaining < 1.5  # every unary call has a deadline


async def test_a_correlation_id_is_made_when_none_is_sent(gateway: Running, fakes: Fakes) -> None:
    reply = await fetch(f"{gateway.v1}/users", headers=bearer("admin-1", "admin"))
    made = reply.headers["x-correlation-id"]
    assert len(made) == 36
    assert fakes.query.seen["ListUsers"][-1]["x-correlation-id"] == made


async def test_responses_show_zero_values_and_enum_words(gateway: Running) -> None:
    reply = await fetch(f"{gateway.v1}/users/u-5", headers=bearer("u-5", "user"))
    user = reply.json()["user"]
    assert user["status"] == "active"
    assert user["login_count"] == 0
    assert user["created_at"] == "2025-10-25T19:57:00Z"
    assert "last_login_at" not in user  # unset timestamps are absent, never a fake zero time


async def test_body_fields_and_path_reach_the_backend(gateway: Running) -> None:
    reply = await fetch(
        f"{gateway.v1}/users/u-3/deactivate",
        method="POST",
        body=b'{"reason": "asked to leave"}',
        headers=JSON_BODY,
    )
    assert reply.status == 200
    assert reply.json() == {"id": "u-3", "message": "asked to leave", "version": 2, "position": 0}


# --- gRPC statuses → HTTP ---------------------------------------------------------------


PASSWORDS = b'{"old_password":"a","new_password":"b"}'
STATUS_CASES = [
    # (method, path, body, HTTP status, gRPC code)
    ("GET", "/users/missing", None, 404, "NOT_FOUND"),
    ("GET", "/users/forbidden", None, 403, "PERMISSION_DENIED"),
    ("GET", "/users/broken", None, 500, "INTERNAL"),
    ("PUT", "/users/u-1/password", PASSWORDS, 400, "FAILED_PRECONDITION"),
    ("PUT", "/users/u-1/email", b'{"new_email":"x@example.com"}', 409, "ALREADY_EXISTS"),
    ("GET", "/streams/u-1", None, 501, "UNIMPLEMENTED"),
    ("GET", "/users/slow/logins", None, 504, "DEADLINE_EXCEEDED"),
]  # fmt: skip


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c[4] for c in STATUS_CASES])
async def test_statuses_map_to_http(
    gateway: Running, case: tuple[str, str, bytes | None, int, str]
) -> None:
    method, path, body, status, code = case
    reply = await fetch(
        f"{gateway.v1}{path}", method=method, body=body, headers=bearer("u-1", "user")
    )
    assert reply.status == status
    assert reply.json()["code"] == code
    assert reply.headers["content-type"] == "application/json"


async def test_no_token_is_401(gateway: Running) -> None:
    reply = await fetch(f"{gateway.v1}/users/u-1")
    assert reply.status == 401
    assert_error(reply.json(), "UNAUTHENTICATED", "missing bearer token")


async def test_rate_limited_login_is_429_with_retry_after(gateway: Running) -> None:
    reply = await fetch(
        f"{gateway.v1}/login", method="POST", body=b'{"email":"a@b.cc","password":"x"}'
    )
    assert reply.status == 429
    assert reply.headers["retry-after"] == "7"
    assert_error(reply.json(), "RESOURCE_EXHAUSTED", "too many failed logins")


# --- a caller's mistakes: always 4xx JSON ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("POST", "/register", b'{"email": "a@b.cc", ', "body: malformed JSON"),
        ("POST", "/register", b'{"email": "a@b.cc", "nickname": "x"}', "nickname: unknown field"),
        ("POST", "/register", b'{"email": 12}', "email: expected a string, got a number"),
        ("POST", "/register", b'"just a string"', "body: expected a JSON object"),
        ("POST", "/register", b"\xff\xfe\xfd", "body: not UTF-8"),
        ("GET", "/users?page_size=abc", None, "page_size: expected an integer, got 'abc'"),
        ("GET", "/users?status=ACTIVE", None, "status: expected one of unspecified, active"),
        ("GET", "/users?colour=red", None, "colour: unknown query parameter"),
        ("GET", "/users?min_position=1&min_position=2", None, "min_position: given more than once"),
        (
            "GET",
            "/replay/user/u-1/state-at?timestamp=notatime",
            None,
            "timestamp: expected an RFC 3339",
        ),
        ("GET", "/events?limit=abc", None, "limit: expected an integer"),
        ("GET", "/users/%ff", None, "path: not UTF-8"),
        (
            "POST",
            "/snapshots/u-1",
            b'{"unexpected": true}',
            "body: this route takes no request body",
        ),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    gateway: Running, method: str, path: str, body: bytes | None, fragment: str
) -> None:
    reply = await fetch(f"{gateway.v1}{path}", method=method, body=body)
    assert reply.status == 400, reply.body
    assert_error(reply.json(), "INVALID_ARGUMENT", fragment)


async def test_a_bad_header_is_400(gateway: Running) -> None:
    reply = await fetch(f"{gateway.v1}/users", headers={"X-Min-Position": "soon"})
    assert reply.status == 400
    assert_error(reply.json(), "INVALID_ARGUMENT", "X-Min-Position")


async def test_unknown_route_is_404_json(gateway: Running) -> None:
    reply = await fetch(f"{gateway.url}/no/such/route")
    assert reply.status == 404
    assert_error(reply.json(), "NOT_FOUND", "/no/such/route")


async def test_wrong_method_is_405_json_with_allow(gateway: Running) -> None:
    reply = await fetch(f"{gateway.v1}/register", method="GET")
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    assert_error(reply.json(), "UNIMPLEMENTED", "method GET is not allowed on /v1/register")
    odd = await fetch(f"{gateway.v1}/users", method="PATCH")
    assert odd.status == 405


async def test_a_declared_oversized_body_is_413_before_it_is_sent(gateway: Running) -> None:
    head = (
        b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_exchange(gateway.port, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "body: larger than 1048576 bytes", "code": "RESOURCE_EXHAUSTED"}


async def test_a_chunked_oversized_body_is_413(gateway: Running) -> None:
    head = (
        b"POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    # 1 MiB and one byte more, and nothing after: the gateway has read all
    # that was sent when it answers, so the answer is not lost to a reset.
    answer = await raw_exchange(gateway.port, head, [chunk] * 16 + [b"1\r\nx\r\n"])
    assert answer.startswith(b"HTTP/1.1 413 ")


# --- NDJSON streams -------------------------------------------------------------------


async def test_a_stream_is_ndjson_one_object_per_line(gateway: Running) -> None:
    status, headers, lines = await read_lines(
        f"{gateway.v1}/admin/rebuild-read-model",
        method="POST",
        body=b"",
        headers=bearer("admin-1", "admin"),
        count=10,
    )
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    objects = [json.loads(line) for line in lines]
    assert [o["done"] for o in objects] == [1, 2, 3]
    assert objects[-1]["finished"] is True
    assert all(line.endswith(b"\n") for line in lines)


async def test_a_stream_refused_at_once_gets_its_own_status(gateway: Running) -> None:
    reply = await fetch(
        f"{gateway.v1}/admin/rebuild-read-model",
        method="POST",
        headers={"Idempotency-Key": "deny"},
    )
    assert reply.status == 403
    assert_error(reply.json(), "PERMISSION_DENIED", "admins only")


async def test_a_stream_failing_midway_ends_with_an_error_line(gateway: Running) -> None:
    _, _, lines = await read_lines(
        f"{gateway.v1}/admin/rebuild-read-model",
        method="POST",
        body=b"{}",
        headers={"Idempotency-Key": "fail-midway"},
        count=10,
    )
    objects = [json.loads(line) for line in lines]
    assert objects[0]["done"] == 1
    assert objects[-1] == {"error": "rebuild interrupted", "code": "ABORTED"}


async def test_an_endless_stream_flushes_and_ends_when_the_client_leaves(
    gateway: Running, fakes: Fakes
) -> None:
    status, _, lines = await read_lines(f"{gateway.v1}/events/subscribe?from_position=10", count=3)
    assert status == 200
    positions = [json.loads(line)["checkpoint"]["position"] for line in lines]
    assert positions == [11, 12, 13]
    for _ in range(100):  # the backend call is cancelled once the client hung up
        if fakes.store.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fakes.store.open_streams == 0


# --- the gateway's own routes ----------------------------------------------------------------


NO_REPORT = {"status": "ok", "ready": True, "role": "", "reason": "", "checks": {}}
QUERY_OK = {
    "status": "ok",
    "ready": True,
    "role": "",
    "reason": "",
    "checks": {
        "read_model_db": {"status": "ok", "required": True, "reason": ""},
        "projector": {
            "status": "ok",
            "required": False,
            "reason": "",
            "position": 7,
            "head": 7,
            "behind": 0,
        },
    },
}


async def test_health_reports_every_backend_and_the_event_count(
    gateway: Running, fakes: Fakes
) -> None:
    for path in ("/health", "/health/ready"):
        reply = await fetch(f"{gateway.url}{path}")
        assert reply.status == 200
        assert reply.json() == {
            "status": "ok",
            "total_events": 42,
            "event_count": 42,
            "services": {"store": "SERVING", "command": "SERVING", "query": "SERVING"},
            "backends": {"store": NO_REPORT, "command": NO_REPORT, "query": QUERY_OK},
        }
    # CountEvents answered only because the gateway called as a service.
    assert fakes.store.seen["CountEvents"][-1]["authorization"].startswith("Bearer ")


async def test_health_degraded_is_200_and_says_why(gateway: Running, fakes: Fakes) -> None:
    reason = "read model stalled at position 7 for 12 s (store head 30)"
    fakes.query.projector = readiness.degraded(reason, position=7, head=30, stalled_seconds=12.5)
    await fakes.query_readiness.run_once()
    try:
        reply = await fetch(f"{gateway.url}/health")
        assert reply.status == 200
        body = reply.json()
        assert body["status"] == "degraded"
        assert body["services"]["query"] == "SERVING"
        query = body["backends"]["query"]
        assert (query["status"], query["ready"]) == ("degraded", True)
        assert query["checks"]["projector"] == {
            "status": "degraded",
            "required": False,
            "reason": reason,
            "position": 7,
            "head": 30,
            "stalled_seconds": 12.5,
        }
    finally:
        fakes.query.projector = readiness.ok(position=7, head=7, behind=0)
        await fakes.query_readiness.run_once()


async def test_a_required_dependency_down_is_503_and_not_serving(
    gateway: Running, fakes: Fakes
) -> None:
    reason = "read model database (PostgreSQL at db:5432) is unavailable: it refused"
    fakes.query.database = readiness.down(reason)
    await fakes.query_readiness.run_once()
    try:
        for path in ("/health", "/health/ready"):
            reply = await fetch(f"{gateway.url}{path}")
            assert reply.status == 503
            body = reply.json()
            assert body["status"] == "down"
            assert body["total_events"] == 42
            assert body["services"]["query"] == "NOT_SERVING"
            query = body["backends"]["query"]
            assert (query["status"], query["ready"]) == ("down", False)
            assert query["reason"] == f"read_model_db: {reason}"
            assert query["checks"]["read_model_db"]["reason"] == reason
        live = await fetch(f"{gateway.url}/health/live")
        assert (live.status, live.json()) == (200, {"status": "ok"})
    finally:
        fakes.query.database = readiness.ok()
        await fakes.query_readiness.run_once()
    assert (await fetch(f"{gateway.url}/health")).status == 200


async def test_openapi_document_is_served(gateway: Running) -> None:
    reply = await fetch(f"{gateway.url}/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"] == "3.1.0"
    assert "/events/aggregate/{aggregate_id}" in document["paths"]
    assert "/v1/events/aggregate/{aggregate_id}" in document["paths"]


# --- backends down, and stopping ------------------------------------------------------


async def test_backends_down_are_503_and_health_says_which() -> None:
    settings = gateway_settings(store="127.0.0.1:1", command="127.0.0.1:1", query="127.0.0.1:1")
    running = await gateway_app.start(settings)
    try:
        url = f"http://127.0.0.1:{running.ports[0]}"
        reply = await fetch(f"{url}/users")
        assert reply.status == 503
        assert_error(reply.json(), "UNAVAILABLE", "cqrs.query.v1.QueryService is unavailable")
        assert "127.0.0.1:1" not in reply.json()["error"]
        health = await fetch(f"{url}/health")
        assert health.status == 503
        body = health.json()
        assert body["status"] == "down"
        assert body["total_events"] is None and body["event_count"] is None
        assert body["services"] == {
            "store": "UNAVAILABLE",
            "command": "UNAVAILABLE",
            "query": "UNAVAILABLE",
        }
        for key, backend in body["backends"].items():
            assert backend == {
                "status": "down",
                "ready": False,
                "role": "",
                "reason": f"{key} service cannot be asked (UNAVAILABLE)",
                "checks": {},
            }
        live = await fetch(f"{url}/health/live")
        assert (live.status, live.json()) == (200, {"status": "ok"})
    finally:
        await running.stop()


async def test_stop_ends_open_streams_promptly(fakes: Fakes) -> None:
    settings = gateway_settings(
        store=fakes.target(0), command=fakes.target(1), query=fakes.target(2)
    )
    running = await gateway_app.start(settings)
    url = f"http://127.0.0.1:{running.ports[0]}/events/subscribe"
    reader = asyncio.create_task(read_lines(url, count=10_000))
    await asyncio.sleep(0.5)  # the stream is open and flowing
    loop = asyncio.get_running_loop()
    started = loop.time()
    await running.stop()
    assert loop.time() - started < 3
    status, _, lines = await asyncio.wait_for(reader, timeout=5)
    assert status == 200
    assert 0 < len(lines) < 10_000
