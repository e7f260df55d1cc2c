"""Quickstart: register, log in, change the email, and read the state as it was before.

Run it against `make up` (no arguments needed), or name the services:

    python examples/quickstart.py [--store HOST:PORT] [--command HOST:PORT] [--query HOST:PORT]

It needs only this package (`pip install ./clients/python`).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import datetime, timezone

from cqrs_users_client import (
    DEFAULT_COMMAND,
    DEFAULT_QUERY,
    DEFAULT_STORE,
    Client,
    InvalidArgument,
)


async def main(store: str, command: str, query: str) -> None:
    email = f"quickstart-{uuid.uuid4().hex[:12]}@example.com"
    password = "SecurePass123!"
    async with Client(store=store, command=command, query=query) as api:
        # A request with several invalid fields is refused with all of them at once.
        try:
            await api.register("not-an-email", "short")
        except InvalidArgument as refused:
            print("refused:", refused.field_errors())

        user = await api.register(email, password)
        print(f"registered {email} as {user.id} (position {user.position})")

        session = await api.login(email, password)
        assert session.user is not None
        print(f"logged in: {session.user.email}, status {session.user.status.value}")
        before = datetime.now(timezone.utc)

        new_email = f"moved-{uuid.uuid4().hex[:12]}@example.com"
        changed = await api.change_email(user.id, new_email)
        print(f"email changed to {changed.email} (version {changed.version})")

        now = await api.state(user.id)
        then = await api.state_at(user.id, at=before)
        print(f"state now: {now.state.email} (version {now.state.version})")
        print(f"state at {before.isoformat()}: {then.state.email} (version {then.state.version})")
        assert now.state.email == new_email and then.state.email == email

        read = await api.get_user(user.id, min_position=changed.position)
        print(f"read model: {read.email}, {read.status.value if read.status else '?'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=DEFAULT_STORE, help="event store host:port")
    parser.add_argument("--command", default=DEFAULT_COMMAND, help="command service host:port")
    parser.add_argument("--query", default=DEFAULT_QUERY, help="query service host:port")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.store, arguments.command, arguments.query))
