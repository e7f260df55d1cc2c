"""The real system for the end-to-end tests, started once per session.

``e2e_system`` runs ``python -m bootstrap`` (what ``make up`` runs) as a
subprocess on free ports and stops it with SIGTERM at the end of the
session. Its teardown holds two session-wide checks: the system exits 0
within 20 s (a graceful stop), and no response body recorded during the
whole session, nor the system's log, contains a bcrypt hash.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from asynch.connection import Connection

from tests.e2e.body_log import BodyLog, find_hash
from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.http_client import HttpClient
from tests.e2e.support import login
from tests.e2e.system_process import (
    MODES,
    STOP_TIMEOUT,
    SystemProcess,
    production_available,
    start_system,
)

_BODY_LOG = BodyLog()


async def drop_production_data(env: dict[str, str]) -> None:
    """Drops the run's ClickHouse database and PostgreSQL schema (the topic stays: cheap)."""
    host, _, port = env["CLICKHOUSE_HOST"].rpartition(":")
    ch = Connection(
        user=env.get("CLICKHOUSE_USER", "default"),
        password=env.get("CLICKHOUSE_PASSWORD", ""),
        host=host,
        port=int(port),
    )
    await ch.connect()
    try:
        async with ch.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS {env['CLICKHOUSE_DB']}")
    finally:
        await ch.close()
    pg = await asyncpg.connect(
        host=env["POSTGRES_QUERY_HOST"],
        port=int(env.get("POSTGRES_QUERY_PORT", "5432")),
        user=env.get("POSTGRES_QUERY_USER", "postgres"),
        password=env.get("POSTGRES_QUERY_PASSWORD", ""),
        database=env.get("POSTGRES_QUERY_DB", "query_db"),
    )
    try:
        await pg.execute(f'DROP SCHEMA IF EXISTS "{env["POSTGRES_QUERY_SCHEMA"]}" CASCADE')
    finally:
        await pg.close()


@pytest.fixture(scope="session")
def body_log() -> BodyLog:
    """Every body any client of the e2e session received."""
    return _BODY_LOG


@pytest.fixture(scope="session", params=MODES)
def e2e_system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, body_log: BodyLog
) -> Iterator[SystemProcess]:
    """The system on embedded defaults, then on ClickHouse + Kafka + PostgreSQL."""
    mode = str(request.param)
    if mode == "production" and not production_available(dict(os.environ)):
        pytest.skip("ClickHouse/PostgreSQL/Kafka not configured (make test sets them)")
    system = start_system(tmp_path_factory.mktemp(f"e2e-{mode}"), body_log, mode=mode)
    try:
        yield system
    finally:
        code = system.stop()
        if mode == "production":
            asyncio.run(drop_production_data(system.env))
    problems: list[str] = []
    if code != 0:
        shown = "did not exit" if code is None else f"exited {code}"
        problems.append(
            f"after SIGTERM the system {shown} within {STOP_TIMEOUT:.0f}s:\n{system.log_tail()}"
        )
    problems += [f"a bcrypt hash in {leak.source}: {leak.excerpt!r}" for leak in body_log.leaks()]
    server_log = system.log_path.read_text(errors="replace")
    at = find_hash(server_log)
    if at >= 0:
        problems.append(f"a bcrypt hash in the system's log: {server_log[at - 80 : at + 80]!r}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def http(e2e_system: SystemProcess, body_log: BodyLog) -> HttpClient:
    """Our shapes (/v1) on the gateway's first port (the seed's auth service, 8088)."""
    return HttpClient(e2e_system.ports.auth, body_log, prefix="/v1")


@pytest.fixture(scope="session")
def query_http(e2e_system: SystemProcess, http: HttpClient) -> HttpClient:
    """Our shapes (/v1) on the seed's query service port (8089)."""
    return http.on(e2e_system.ports.query)


@pytest.fixture(scope="session")
def store_http(e2e_system: SystemProcess, http: HttpClient) -> HttpClient:
    """Our shapes (/v1) on the seed's event store port (8090)."""
    return http.on(e2e_system.ports.store_http)


@pytest.fixture(scope="session")
def seed_http(http: HttpClient) -> HttpClient:
    """The seed's routes, unprefixed, on the seed's auth service port (8088)."""
    return http.root


@pytest.fixture(scope="session")
def seed_query_http(query_http: HttpClient) -> HttpClient:
    """The seed's routes on the seed's query service port (8089)."""
    return query_http.root


@pytest.fixture(scope="session")
def seed_store_http(store_http: HttpClient) -> HttpClient:
    """The seed's routes on the seed's event store port (8090)."""
    return store_http.root


@pytest.fixture(scope="session")
def grpcurl(body_log: BodyLog) -> Grpcurl:
    return Grpcurl(body_log)


@pytest.fixture(scope="session")
def admin_token(e2e_system: SystemProcess, http: HttpClient) -> str:
    """The bootstrapped admin's token, from a real login (ready: see start_system)."""
    return login(http, e2e_system.admin_email, e2e_system.admin_password)


@pytest.fixture(scope="session")
def admin_id(admin_token: str, http: HttpClient, e2e_system: SystemProcess) -> str:
    answer = http.get("/users", token=admin_token)
    assert answer.status == 200, answer.describe()
    ids = [u["id"] for u in answer.json()["users"] if u["email"] == e2e_system.admin_email]
    assert len(ids) == 1, answer.describe()
    found: str = ids[0]
    return found
