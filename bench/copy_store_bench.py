"""How fast ``cqrs-admin copy-store`` copies an old plaintext store: events per second.

``python -m bench.copy_store_bench [--users N]`` builds, in a temporary folder,
an embedded event store in the format before encryption (each of N users: a
``user.created`` with its plaintext email claim and a ``user.login.recorded``),
then times ``copy_store`` on it, the same function the command runs: reading,
upcasting, keying each user, sealing, digesting claims, writing, and the
verification that re-reads both stores. Figures, not a test: one run, on
whatever machine runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sqlite3
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cqrs_admin.copy_sqlite import sqlite_places
from cqrs_admin.copy_store import copy_store
from store_svc.engine import SqliteStorage
from store_svc.engine.model import to_micros

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(users: int) -> list[tuple[object, ...]]:
    """The event rows, as the release before encryption wrote them (clear JSON, claims
    holding the address)."""
    rows: list[tuple[object, ...]] = []
    for n in range(users):
        user, email = str(uuid.uuid4()), f"bench-{n}@example.com"
        created = {"email": email, "password_hash": "h", "role": "user"}
        claim = json.dumps([["user.email", email]])
        for version, (event_type, payload, claims) in enumerate(
            [
                ("user.created", created, claim),
                ("user.login.recorded", {"client_address": "10.0.0.1"}, ""),
            ],
            1,
        ):
            position = len(rows) + 1
            micros = to_micros(_T0 + timedelta(seconds=position))
            payload_bytes = json.dumps(payload).encode()
            rows.append(
                (
                    position,
                    str(uuid.uuid4()),
                    user,
                    "user",
                    version,
                    event_type,
                    micros,
                    payload_bytes,
                    claims,
                )
            )
    return rows


async def _run(users: int) -> None:
    with tempfile.TemporaryDirectory(prefix="copy-bench-") as tmp:
        old, new = Path(tmp) / "old", Path(tmp) / "new"
        await (await SqliteStorage.open(old / "events.sqlite3")).close()  # the schema
        with closing(sqlite3.connect(old / "events.sqlite3")) as db, db:
            db.executemany(
                "INSERT INTO events (position, event_id, aggregate_id, aggregate_type, version, "
                "event_type, timestamp_us, payload, claims) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _rows(users),
            )
        began = time.perf_counter()
        report = await copy_store(*sqlite_places(old, new, {}), io.StringIO())
        took = time.perf_counter() - began
    print(f"copy-store: {report.events} events of {report.streams} streams")
    print(f"  copied and verified in {took:.2f} s: {report.events / took:,.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="users (2 events each)")
    asyncio.run(_run(parser.parse_args().users))


if __name__ == "__main__":
    main()
