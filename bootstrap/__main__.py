"""``python -m bootstrap`` (what ``make up`` runs): the whole system in one process."""

from __future__ import annotations

import asyncio
import sys

from bootstrap import local_defaults
from bootstrap.run_all import start, wait_admin
from pii.keystore import WrongMasterKey
from service_kit import tracing
from service_kit.observability import setup_process
from service_kit.schema_versions import SchemaMismatch
from service_kit.server import stop_event_on_signals
from service_kit.settings import SettingsError
from store_svc.engine import StorageUnavailable, WriterLockHeld

BANNER = """
cqrs-users is running (data in {data}/; Ctrl-C stops it, a restart keeps the data)

  HTTP gateway   http://127.0.0.1:{http}  (every route on each of {http_ports})
  gRPC           store 127.0.0.1:{store}   command 127.0.0.1:{command}   query 127.0.0.1:{query}
  admin login    {admin}
  mail           {mail}
  keys           {keys}/ (public keys: http://127.0.0.1:{http}/.well-known/jwks.json)
  OpenAPI        http://127.0.0.1:{http}/openapi.json

Try:
  curl -s -X POST http://127.0.0.1:{http}/register \\
       -d '{{"email":"john@example.com","password":"SecurePass123!"}}'
  grpcurl -plaintext 127.0.0.1:{command} describe cqrs.command.v1.CommandService
"""


def admin_line(env: dict[str, str], outcome_usable: bool | None, text: str) -> str:
    """The banner's admin line: credentials only when they work."""
    if outcome_usable is None:
        return "(none: set ADMIN_EMAIL and ADMIN_PASSWORD)" if not env.get("ADMIN_EMAIL") else text
    if not outcome_usable:
        return text  # says why, and prints no credentials that do not work
    password = (
        env["ADMIN_PASSWORD"]
        if env.get("ADMIN_PASSWORD") == local_defaults.DEFAULT_ADMIN_PASSWORD
        else "(from ADMIN_PASSWORD)"
    )
    return f"{env['ADMIN_EMAIL']} / {password}"


async def run(env: dict[str, str]) -> None:
    system = await start(env)
    stop = stop_event_on_signals()
    outcome = await wait_admin(system)
    usable = None if outcome is None else outcome.usable
    described = "the admin bootstrap has not finished; see the log"
    if outcome is not None:
        described = outcome.describe()
    assert system.query is not None
    print(
        BANNER.format(
            data=env["DATA_DIR"],
            http=system.ports["gateway (HTTP)"][0],
            http_ports=", ".join(map(str, system.ports["gateway (HTTP)"])),
            store=system.ports["store (gRPC)"][0],
            command=system.ports["command (gRPC)"][0],
            query=system.ports["query (gRPC)"][0],
            admin=admin_line(env, usable, described),
            mail=system.query.mailer.transport.describe(),
            keys=env["KEYS_DIR"],
        ),
        flush=True,
    )
    await stop.wait()
    print("stopping…", flush=True)
    await system.stop()
    tracing.shutdown()


def main() -> None:
    try:
        env = local_defaults.apply()
        # Plain text for a terminal unless LOG_FORMAT=json; LOG_LEVEL, METRICS_PORT
        # and OTEL_* as for every service run alone.
        setup_process("cqrs-users", env, log_format="text")
        asyncio.run(run(env))
    except (
        SettingsError,
        SchemaMismatch,
        WrongMasterKey,
        OSError,
        WriterLockHeld,
        StorageUnavailable,
    ) as exc:
        # One line naming the setting, never a traceback: these are the user's to fix.
        sys.exit(f"make up: {exc}")


main()
