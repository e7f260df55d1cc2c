"""The ``cqrs-admin`` command line: parse, run one operation, exit with its status.

Exit status: 0 done; 1 refused, failed or misconfigured (one line on stderr saying why,
never a traceback for a cause the operator can fix); 2 bad usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cqrs_admin.backup import backup
from cqrs_admin.copy_clickhouse import clickhouse_places
from cqrs_admin.copy_sqlite import sqlite_places
from cqrs_admin.copy_store import StorePlace, copy_store
from cqrs_admin.errors import AdminError
from cqrs_admin.migrate import migrate
from cqrs_admin.restore import restore
from cqrs_admin.stack import Stack
from cqrs_admin.status import collect
from query_svc import rebuild
from service_kit.dependency_errors import DependencyUnavailable
from service_kit.schema_versions import SchemaMismatch
from service_kit.settings import SettingsError
from store_svc.engine import StorageUnavailable, WriterLockHeld

__all__ = ["main"]

_EPILOG = """\
The tool reads the services' variables (DATA_DIR, EVENT_STORE_BACKEND,
CLICKHOUSE_*, QUERY_DB_BACKEND, POSTGRES_QUERY_*, KAFKA_*): run it in the
deployment's environment. See README.md ("Administration") and docs/deploy.md.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cqrs-admin",
        description="Operate cqrs-users: status, rebuild, backup, restore, migrate, copy-store.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status", help="positions, lags, the writer, schema and code versions"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    rebuild_cmd = commands.add_parser(
        "rebuild", help="rebuild the read model on a running query_svc (needs an admin)"
    )
    rebuild_cmd.add_argument(
        "--target",
        default=os.environ.get("QUERY_GRPC_TARGET", rebuild.DEFAULT_TARGET),
        help="query_svc address (default: $QUERY_GRPC_TARGET or %(default)s)",
    )
    rebuild_cmd.add_argument("--timeout", type=float, default=3600.0, help="deadline in seconds")
    backup_cmd = commands.add_parser("backup", help="an online, consistent backup into FILE")
    backup_cmd.add_argument("--out", required=True, type=Path, metavar="FILE")
    restore_cmd = commands.add_parser(
        "restore", help="restore a backup into an empty data folder or database"
    )
    restore_cmd.add_argument("--from", dest="source", required=True, type=Path, metavar="FILE")
    commands.add_parser("migrate", help="bring every store to this code's schema version")
    copy_cmd = commands.add_parser(
        "copy-store",
        help="copy an event store into a new one, upcast and encrypted, then verify it",
        description=(
            "Copies an event store into a new one: every event upcast to its current "
            "version, personal fields encrypted with the copy's key store, claims as keyed "
            "digests; ids, positions, versions and times kept. Verifies the copy at the end "
            "(exit status 1 on any difference). Embedded: --from DIR --to TARGET (data "
            "folders). Production: --to-database NAME --to-keys FILE copies the ClickHouse "
            "database the environment names (CLICKHOUSE_*) into NAME (on the server "
            "TARGET_CLICKHOUSE_HOST names, else the same), its keys into FILE. Stop the "
            "services first; start them on the copy afterwards."
        ),
    )
    copy_cmd.add_argument("--from", dest="source", type=Path, metavar="DIR")
    copy_cmd.add_argument("--to", dest="target", type=Path, metavar="TARGET")
    copy_cmd.add_argument("--to-database", metavar="NAME")
    copy_cmd.add_argument("--to-keys", type=Path, metavar="FILE")
    return parser


async def _run(args: argparse.Namespace) -> int:
    if args.command == "copy-store":
        return await _copy_store(args)
    stack = Stack.from_env(os.environ)
    if args.command == "status":
        status = await collect(stack)
        print(status.as_json() if args.json else status.text(), end="" if not args.json else "\n")
    elif args.command == "backup":
        manifest = await backup(stack, args.out)
        print(
            f"backup {args.out}: every event up to position {manifest.position} ({manifest.stack})"
        )
    elif args.command == "restore":
        manifest = await restore(stack, args.source)
        print(
            f"restored {args.source}: events up to position {manifest.position}; start the "
            "services: the read model catches up from its checkpoint"
        )
    elif args.command == "migrate":
        for report in await migrate(stack):
            print(report.line())
    return 0


async def _copy_store(args: argparse.Namespace) -> int:
    source: StorePlace
    target: StorePlace
    if args.to_database:
        source, target = clickhouse_places(os.environ, args.to_database, args.to_keys)
        start = f"CLICKHOUSE_DB={args.to_database} PII_KEYS_FILE={args.to_keys}"
    else:
        source, target = sqlite_places(args.source, args.target, os.environ)
        start = f"DATA_DIR={args.target}"
    copied = await copy_store(source, target, sys.stdout)
    print(f"copy-store: {copied.line()}; start the services with {start}")
    return 0


def _check_copy_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    given = tuple(v is not None for v in (args.source, args.target, args.to_database, args.to_keys))
    if given not in {(True, True, False, False), (False, False, True, True)}:
        parser.error(
            "copy-store takes --from DIR --to TARGET, or --to-database NAME --to-keys FILE"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "copy-store":
        _check_copy_args(parser, args)
    if args.command == "rebuild":
        sys.exit(
            rebuild.run(target=args.target, timeout=args.timeout, env=os.environ, out=sys.stderr)
        )
    try:
        code = asyncio.run(_run(args))
    except SettingsError as exc:
        sys.exit(f"cqrs-admin: {exc}")  # exit status 1 with the message, like the services
    except (
        AdminError,
        SchemaMismatch,
        StorageUnavailable,
        WriterLockHeld,
        DependencyUnavailable,
    ) as exc:
        sys.exit(f"cqrs-admin {args.command}: {exc}")
    sys.exit(code)
