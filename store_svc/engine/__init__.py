"""Event store engine: single writer, group commit, gapless global positions.

Implements ARCHITECTURE.md section 2. Knows nothing of gRPC, protobuf or the
user domain: payloads are opaque (JSON) bytes. Storage sits behind the
`Storage` port with two adapters, `SqliteStorage` and `ClickHouseStorage`.
"""

from store_svc.engine.clickhouse_storage import ClickHouseConfig, ClickHouseStorage
from store_svc.engine.errors import (
    ClaimTaken,
    DuplicateEventId,
    EngineError,
    StorageUnavailable,
    StoreClosed,
    WriterLockHeld,
    WrongExpectedVersion,
)
from store_svc.engine.model import (
    AppendResult,
    Checkpoint,
    Claim,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    SnapshotRecord,
)
from store_svc.engine.sqlite_storage import SqliteStorage
from store_svc.engine.storage import Storage
from store_svc.engine.store import MAX_READ_LIMIT, EventStore

__all__ = [
    "MAX_READ_LIMIT",
    "AppendResult",
    "Checkpoint",
    "Claim",
    "ClaimTaken",
    "ClickHouseConfig",
    "ClickHouseStorage",
    "DuplicateEventId",
    "EngineError",
    "EventStore",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
    "SnapshotRecord",
    "SqliteStorage",
    "Storage",
    "StorageUnavailable",
    "StoreClosed",
    "WriterLockHeld",
    "WrongExpectedVersion",
]
