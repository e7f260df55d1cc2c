"""``cqrs-admin migrate``: bring every store to the code's schema version.

The event store first, then the read model; each migration and its version
row are applied in order (see ``service_kit.schema_versions``). Refused
while an event store writer runs on the store: the services must be stopped
(a running service of the older release would write to a schema it does
not know; one of the newer release would not have started).

The event store's migration that turns an old store's plaintext email
claims into keyed digests (SQLite 3, ClickHouse 4) needs the claim key: the
deployment's key store is opened (the same ``PII_MASTER_KEY`` /
``PII_KEYS_FILE`` as the services; a wrong master key is refused).
"""

from __future__ import annotations

from cqrs_admin.errors import AdminError
from cqrs_admin.stack import Stack
from cqrs_admin.status import collect
from pii.keystore import WrongMasterKey
from query_svc.session_tables import SESSION_TABLES
from service_kit.schema_versions import SchemaReport

__all__ = ["migrate"]


async def _migrate_event_store(stack: Stack) -> SchemaReport | None:
    # The claim key: an old store's plaintext claims become digests (SQLite migration
    # 3, ClickHouse 4).
    try:
        keys = stack.store.pii_settings.open_keys()
    except WrongMasterKey as exc:
        raise AdminError(str(exc)) from None
    try:
        storage = await stack.open_event_store(migrate=True, claim_digest=keys.claim_digest)
        try:
            return storage.schema_report
        finally:
            await storage.close()
    finally:
        keys.close()


async def migrate(stack: Stack) -> list[SchemaReport]:
    """Migrates both stores; the reports, event store first."""
    status = await collect(stack)
    running = [who for who, state in status.writers if state == "leader"]
    if running:
        raise AdminError(
            f"an event store writer is running on {status.event_store.where} ({running[0]}): "
            "stop the services, then run `cqrs-admin migrate` again"
        )
    reports = [await _migrate_event_store(stack)]
    database = stack.read_model()
    try:
        reports.append(
            await database.ensure_schema(
                schema=stack.pg_schema, also=[SESSION_TABLES.metadata], migrate=True
            )
        )
    finally:
        await database.close()
    return [report for report in reports if report is not None]
