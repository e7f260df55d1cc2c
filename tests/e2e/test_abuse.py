"""The attacks of issue 13, replayed against the real system, and how they now fail.

On the session's system (both stacks; on the production stack the login
budgets live in PostgreSQL): concurrent guessing, guessing through
``old_password``, spoofed client addresses, forged page tokens. On a
system of its own with the default budgets (the session's system raises
some, for the suite's own traffic): registrations and successful logins
per client, wrong passwords per address, slow and greedy HTTP clients.

Each test sends from a loopback address of its own (``source``), so the
per-address budgets of one test do not touch another's.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.http_client import HttpClient, HttpResponse
from tests.e2e.support import login, register, unique_email
from tests.e2e.system_process import SystemProcess, start_system

pytestmark = pytest.mark.e2e

WRONG = "wrong-guess-1"
READ_TIMEOUT = 1.0
IN_FLIGHT = 30  # GATEWAY_MAX_IN_FLIGHT_PER_CLIENT of the strict system (>= its 25-wide bursts)


def _login(http: HttpClient, email: str, password: str, source: str) -> HttpResponse:
    return http.post("/login", json_body={"email": email, "password": password}, source=source)


def test_a_burst_of_guesses_evaluates_at_most_the_budget_and_the_right_password_waits(
    http: HttpClient,
) -> None:
    user = register(http, "burst")
    source = "127.0.0.31"
    login(http, user.email, user.password, after=user.position)  # the read model has the user
    answers: list[HttpResponse] = []
    with ThreadPoolExecutor(max_workers=40) as pool:
        guesses = [pool.submit(_login, http, user.email, WRONG, source) for _ in range(40)]
        done = as_completed(guesses)
        answers += [next(done).result() for _ in range(5)]
        # Five answers are in, whatever they were: the budget of this email
        # from this address is spent, while the rest of the burst is in flight.
        right = pool.submit(_login, http, user.email, user.password, source)
        answers += [f.result() for f in done]
        answer = right.result()
    seen = Counter((a.status, a.body[:120]) for a in answers)
    assert sorted(a.status for a in answers) == [401] * 5 + [429] * 35, seen
    assert answer.status == 429, answer.describe()
    assert answer.code == "RESOURCE_EXHAUSTED"
    assert 1 <= int(answer.headers["retry-after"]) <= 900
    # The owner, from another address, is not locked out.
    assert _login(http, user.email, user.password, "127.0.0.32").status == 200


def test_guessing_from_many_addresses_does_not_lock_the_owner_out_of_a_known_address(
    http: HttpClient,
) -> None:
    user = register(http, "spread")
    home = "127.0.0.33"
    login(http, user.email, user.password, after=user.position)
    assert _login(http, user.email, user.password, home).status == 200  # home is known now
    # 30 failures for the email (its wider budget), from 6 addresses.
    for n in range(30):
        assert _login(http, user.email, WRONG, f"127.0.3.{n // 5 + 1}").status == 401
    assert _login(http, user.email, user.password, "127.0.4.1").status == 429
    assert _login(http, user.email, user.password, home).status == 200


def test_old_password_guesses_share_a_budget(http: HttpClient) -> None:
    user = register(http, "oracle")
    token = login(http, user.email, user.password, after=user.position)
    change = {"old_password": "not-the-password", "new_password": "NewSecurePass123!"}
    statuses = [
        http.put(f"/users/{user.id}/password", json_body=change, token=token).status
        for _ in range(6)
    ]
    assert statuses == [400] * 5 + [429]
    right = {"old_password": user.password, "new_password": "NewSecurePass123!"}
    refused = http.put(f"/users/{user.id}/password", json_body=right, token=token)
    assert refused.status == 429, refused.describe()
    assert refused.headers["retry-after"].isdigit()


def test_a_direct_grpc_caller_cannot_pick_its_address(
    http: HttpClient, grpcurl: Grpcurl, e2e_system: SystemProcess
) -> None:
    user = register(http, "spoofed")
    login(http, user.email, user.password, after=user.position)
    codes = []
    for n in range(6):
        result = grpcurl.run(
            e2e_system.ports.query_grpc,
            "cqrs.query.v1.QueryService/Login",
            data={"email": user.email, "password": WRONG},
            headers={"x-forwarded-for": f"198.51.100.{n}"},
            check=False,
        )
        codes.append(result.stderr.split("Code: ")[-1].split()[0] if result.stderr else "OK")
    # One budget (the real address), not a fresh one per forged address.
    assert codes == ["Unauthenticated"] * 5 + ["ResourceExhausted"], codes
    right = _login(http, user.email, user.password, "127.0.0.35")
    assert right.status == 200, right.describe()
    token = right.json()["token"]
    logins = http.get(f"/users/{user.id}/logins", token=token).json()["logins"]
    assert not any(x["client_address"].startswith("198.51.100.") for x in logins), logins


def test_a_forged_page_token_is_400_naming_the_field(http: HttpClient) -> None:
    user = register(http, "pager")
    token = login(http, user.email, user.password, after=user.position)
    raw = json.dumps({"k": "logins", "t": 1, "i": 2**70, "u": user.id}).encode()
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    answer = http.get(f"/users/{user.id}/logins?page_size=1&page_token={forged}", token=token)
    assert answer.status == 400, answer.describe()
    assert answer.code == "INVALID_ARGUMENT"
    assert [v["field"] for v in answer.json()["violations"]] == ["page_token"]


# --- a system with the default budgets ------------------------------------------------


@pytest.fixture(scope="module")
def strict_system(
    tmp_path_factory: pytest.TempPathFactory, body_log: BodyLog
) -> Iterator[SystemProcess]:
    system = start_system(
        tmp_path_factory.mktemp("e2e-abuse"),
        body_log,
        extra_env={
            "REGISTER_MAX_PER_ADDRESS": "20",
            "LOGIN_MAX_SUCCESSES_PER_EMAIL": "30",
            "LOGIN_MAX_FAILURES_PER_ADDRESS": "100",  # the default; the harness lifts it
            "GATEWAY_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
            "GATEWAY_MAX_CONNECTIONS_PER_CLIENT": "50",
            "GATEWAY_MAX_IN_FLIGHT_PER_CLIENT": str(IN_FLIGHT),
        },
    )
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def strict_http(strict_system: SystemProcess, body_log: BodyLog) -> HttpClient:
    return HttpClient(strict_system.ports.auth, body_log, prefix="/v1")


def test_registrations_from_one_address_are_limited(strict_http: HttpClient) -> None:
    def one(n: int) -> int:
        body = {"email": unique_email(f"reg{n}"), "password": "SecurePass123!"}
        return strict_http.post("/register", json_body=body, source="127.0.0.41").status

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(one, range(50)))
    assert sorted(statuses) == [201] * 20 + [429] * 30, statuses
    # Another address still registers.
    body = {"email": unique_email("other"), "password": "SecurePass123!"}
    assert strict_http.post("/register", json_body=body, source="127.0.0.42").status == 201


def test_successful_logins_are_limited_and_repeats_append_no_event(
    strict_system: SystemProcess, strict_http: HttpClient
) -> None:
    user = register(strict_http, "busy")
    login(strict_http, user.email, user.password, after=user.position)
    statuses = [
        _login(strict_http, user.email, user.password, "127.0.0.43").status for _ in range(40)
    ]
    assert statuses == [200] * 29 + [429] * 11  # 30 a minute, the first login included
    # Per account, whatever the address.
    assert _login(strict_http, user.email, user.password, "127.0.0.44").status == 429
    # 30 logins from 2 addresses (127.0.0.1, 127.0.0.43): 2 events, not 30.
    admin = login(strict_http, strict_system.admin_email, strict_system.admin_password)
    deadline = time.monotonic() + 10
    while True:
        logins = strict_http.get(f"/users/{user.id}/logins", token=admin).json()
        if logins["count"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # anything more would have shown up by now
    logins = strict_http.get(f"/users/{user.id}/logins", token=admin).json()
    assert logins["count"] == 2, logins


def test_repeated_failed_logins_from_one_address_are_429(
    strict_system: SystemProcess, strict_http: HttpClient
) -> None:
    source = "127.0.0.23"
    for attempt in range(100):  # LOGIN_MAX_FAILURES_PER_ADDRESS
        failed = _login(strict_http, unique_email(f"nobody{attempt}"), "wrong-guess", source)
        assert failed.status == 401, failed.describe()
    answer = _login(strict_http, unique_email("nobody"), "x", source)
    assert answer.status == 429, answer.describe()
    assert "retry-after" in answer.headers
    # Other addresses still log in.
    assert login(strict_http, strict_system.admin_email, strict_system.admin_password)


def _half_sent(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_half_sent_heads_are_dropped_and_a_flood_is_refused(
    strict_system: SystemProcess, strict_http: HttpClient
) -> None:
    port = strict_system.ports.auth
    held = [_half_sent(port, "127.0.0.51") for _ in range(50)]
    try:
        # Sending nothing: bytes the server never read would turn its close into a reset.
        extra = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=("127.0.0.51", 0)
        )
        started = time.monotonic()
        assert _read_all(extra).startswith(b"HTTP/1.1 503 ")
        assert time.monotonic() - started < READ_TIMEOUT
        # Others still get in while one client holds its 50 connections.
        assert strict_http.root.get("/health").status in {200, 503}
        answers = [_read_all(sock) for sock in held]
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
        assert time.monotonic() - started < READ_TIMEOUT + 5
    finally:
        for sock in [*held, extra]:
            sock.close()


def test_a_head_over_64_kib_is_431(strict_system: SystemProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict_system.ports.auth), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 431 ")


def test_requests_in_flight_per_client_are_bounded(strict_http: HttpClient) -> None:
    user = register(strict_http, "inflight")
    token = login(strict_http, user.email, user.password, after=user.position)
    # A position no command has reached: each read waits (5 s, QUERY_WAIT_TIMEOUT_MS).
    slow_path = f"/users/{user.id}?min_position={10**12}"
    extra = 3

    def slow(_: int) -> HttpResponse:
        return strict_http.get(slow_path, token=token, source="127.0.0.61")

    with ThreadPoolExecutor(max_workers=IN_FLIGHT + extra) as pool:
        burst = [pool.submit(slow, n) for n in range(IN_FLIGHT + extra)]
        time.sleep(0.5)  # every request of the burst has reached the gateway by now
        # Another address is not held up by this one's requests.
        other = strict_http.get(f"/users/{user.id}", token=token, source="127.0.0.62")
        assert other.status == 200, other.describe()
        answers = [f.result() for f in burst]
    seen = Counter((a.status, a.body[:100]) for a in answers)
    assert sorted(a.status for a in answers) == [429] * extra + [503] * IN_FLIGHT, seen
    refused = [a for a in answers if a.status == 429]
    for answer in refused:
        assert answer.code == "RESOURCE_EXHAUSTED"
        assert answer.headers["retry-after"] == "1"
        assert f"more than {IN_FLIGHT} requests in flight" in answer.error
    # Once the slow ones are answered, the address is served again.
    again = strict_http.get(f"/users/{user.id}", token=token, source="127.0.0.61")
    assert again.status == 200, again.describe()
