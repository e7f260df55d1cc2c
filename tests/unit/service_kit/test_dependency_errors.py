"""service_kit.dependency_errors: every driver's error classes, bare and wrapped.

Every exception class that asyncpg, sqlite3 (what aiosqlite raises),
asynch and aiokafka define is constructed for real and fed through
``classify``, alone and wrapped the way SQLAlchemy and our own code wrap
them. The expected outages are listed by name here, independently of the
rules in the module, so a rule that changes shows up as a failing name.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
import asyncpg.exceptions  # type: ignore[import-untyped]
import grpc
import pytest
from aiokafka import errors as kafka_errors
from asynch import errors as ch_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from service_kit import errors
from service_kit.dependency_errors import (
    Dependency,
    DependencyUnavailable,
    chain,
    classify,
    describe,
)

pytestmark = pytest.mark.unit

# -- helpers ----------------------------------------------------------------------------


def exception_classes(module: ModuleType) -> Iterator[type[BaseException]]:
    """Every exception class a module defines (DB-API ``Warning`` classes excluded:
    they are never raised as errors)."""
    for _, value in sorted(vars(module).items()):
        if (
            inspect.isclass(value)
            and issubclass(value, BaseException)
            and not issubclass(value, Warning)
            and not value.__name__.endswith("Warning")
            and value.__module__.split(".")[0] == module.__name__.split(".")[0]
        ):
            yield value


def build(cls: type[BaseException]) -> BaseException:
    """A real instance: the constructors differ (ClickHouse's server error takes a code)."""
    if cls is ch_errors.ServerException:
        return ch_errors.ServerException("Code: 60. Table x doesn't exist", 60)
    return cls("boom")


def raised(outer: BaseException, *, cause: BaseException) -> BaseException:
    """``outer`` raised ``from cause``, as code does (so the chain is real)."""
    try:
        raise outer from cause
    except BaseException as exc:
        return exc


def wrapped_by_sqlalchemy(driver_error: BaseException) -> BaseException:
    """The shape of the issue's 500: asyncpg's error inside SQLAlchemy's adapter
    error inside a plain ``DBAPIError`` (``.orig`` plus ``__cause__``)."""
    adapter = raised(
        AsyncAdapt_asyncpg_dbapi.Error(str(driver_error)),  # type: ignore[no-untyped-call]
        cause=driver_error,
    )
    return raised(sa_exc.DBAPIError("SELECT 1", None, adapter), cause=adapter)


# -- asyncpg (PostgreSQL) ----------------------------------------------------------------

PG_OUTAGES = {
    # 08: connection exceptions
    "PostgresConnectionError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "ClientCannotConnectError",
    "ConnectionRejectionError",
    "TransactionResolutionUnknownError",
    "ProtocolViolationError",
    # 28: credentials refused
    "InvalidAuthorizationSpecificationError",
    "InvalidPasswordError",
    # 40: rolled back, retry (40002, an integrity violation, is not)
    "TransactionRollbackError",
    "SerializationError",
    "StatementCompletionUnknownError",
    "DeadlockDetectedError",
    # 53: out of resources
    "InsufficientResourcesError",
    "DiskFullError",
    "OutOfMemoryError",
    "TooManyConnectionsError",
    "ConfigurationLimitExceededError",
    # 57: operator intervention
    "OperatorInterventionError",
    "QueryCanceledError",
    "AdminShutdownError",
    "CrashShutdownError",
    "CannotConnectNowError",
    "DatabaseDroppedError",
    "IdleSessionTimeoutError",
    # 58: system errors
    "PostgresSystemError",
    "PostgresIOError",
    "UndefinedFileError",
    "DuplicateFileError",
    "FileNameTooLongError",
    # single codes
    "ReadOnlySQLTransactionError",
    "IdleInTransactionSessionTimeoutError",
    "TransactionTimeoutError",
    "ObjectInUseError",
    "LockNotAvailableError",
    # client side: no server with the wanted role, connection out of step
    "TargetServerAttributeNotMatched",
    "ProtocolError",
    "OutdatedSchemaCacheError",
}

PG_CLASSES = list(exception_classes(asyncpg.exceptions))


def test_asyncpg_has_the_classes_this_table_was_written_for() -> None:
    names = {c.__name__ for c in PG_CLASSES}
    assert len(PG_CLASSES) > 250
    assert names >= PG_OUTAGES


@pytest.mark.parametrize("cls", PG_CLASSES, ids=lambda c: c.__name__)
def test_every_asyncpg_error_bare_and_wrapped_by_sqlalchemy(cls: type[BaseException]) -> None:
    error = build(cls)
    expected = cls.__name__ in PG_OUTAGES
    assert (classify(error) is not None) == expected
    wrapped = classify(wrapped_by_sqlalchemy(error))
    assert (wrapped is not None) == expected
    if wrapped is not None:
        assert wrapped.system == "PostgreSQL"
        assert cls.__name__ in wrapped.reason


def test_the_issue_case_cannot_connect_now_inside_a_plain_dbapi_error() -> None:
    error = wrapped_by_sqlalchemy(
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    )
    assert type(error) is sa_exc.DBAPIError
    outage = classify(error)
    assert outage is not None
    assert outage.reason == "it is starting up (CannotConnectNowError)"
    assert outage.error == "CannotConnectNowError"


def test_asyncpg_interface_errors_closed_is_an_outage_misuse_is_a_bug() -> None:
    assert classify(asyncpg.InterfaceError("connection is closed")) is not None
    assert classify(asyncpg.InterfaceError("pool is closing")) is not None
    assert (
        classify(
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
        )
        is None
    )


# -- SQLite (aiosqlite raises sqlite3's classes) -----------------------------------------


def test_aiosqlite_raises_sqlite3s_classes() -> None:
    assert aiosqlite.OperationalError is sqlite3.OperationalError
    assert aiosqlite.DatabaseError is sqlite3.DatabaseError


SQLITE_CLASSES = list(exception_classes(sqlite3))


@pytest.mark.parametrize("cls", SQLITE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("message", "outage"),
    [
        ("database is locked", True),
        ("disk I/O error", True),
        ("database or disk is full", True),
        ("unable to open database file", True),
        ("attempt to write a readonly database", True),
        ("Cannot operate on a closed database.", True),
        ("no such table: users", False),
        ('near "SELEC": syntax error', False),
        ("database disk image is malformed", False),
    ],
)
def test_every_sqlite_error_by_message(
    cls: type[BaseException], message: str, outage: bool
) -> None:
    assert (classify(cls(message)) is not None) == outage
    assert (classify(wrapped_by_sqlalchemy(cls(message))) is not None) == outage


@pytest.mark.parametrize(
    ("code", "outage"),
    [
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_LOCKED, True),
        (sqlite3.SQLITE_IOERR, True),
        (sqlite3.SQLITE_FULL, True),
        (sqlite3.SQLITE_CANTOPEN, True),
        (sqlite3.SQLITE_READONLY, True),
        (sqlite3.SQLITE_CORRUPT, False),
        (sqlite3.SQLITE_NOTADB, False),
        (sqlite3.SQLITE_ERROR, False),
        (sqlite3.SQLITE_CONSTRAINT, False),
    ],
)
def test_sqlite_errors_by_their_code(code: int, outage: bool) -> None:
    error = sqlite3.OperationalError("whatever the text says")
    error.sqlite_errorcode = code  # what sqlite3 sets on errors it raises
    assert (classify(error) is not None) == outage


async def test_a_real_locked_sqlite_database_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with aiosqlite.connect(path) as writer, aiosqlite.connect(path, timeout=0) as other:
        await writer.execute("CREATE TABLE t (x INTEGER)")
        await writer.commit()
        await writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            await other.execute("BEGIN IMMEDIATE")
        outage = classify(caught.value)
        assert outage is not None and outage.system == "SQLite"
        with pytest.raises(sqlite3.OperationalError) as missing:
            await other.execute("SELECT * FROM no_such_table")
        assert classify(missing.value) is None


async def test_a_closed_aiosqlite_connection_is_an_outage(tmp_path: Path) -> None:
    conn = await aiosqlite.connect(tmp_path / "db.sqlite3")
    await conn.close()
    with pytest.raises(ValueError) as caught:
        await conn.execute("SELECT 1")
    assert classify(caught.value) is not None
    assert classify(ValueError("invalid literal for int()")) is None


# -- ClickHouse (asynch) -----------------------------------------------------------------

CH_OUTAGES = {"NetworkError", "SocketTimeoutError", "OperationalError", "AsynchPoolError"}
CH_CLASSES = list(exception_classes(ch_errors))


@pytest.mark.parametrize("cls", CH_CLASSES, ids=lambda c: c.__name__)
def test_every_asynch_error(cls: type[BaseException]) -> None:
    assert (classify(build(cls)) is not None) == (cls.__name__ in CH_OUTAGES)


@pytest.mark.parametrize(
    ("code", "outage"),
    [
        (ch_errors.ErrorCode.TIMEOUT_EXCEEDED, True),
        (ch_errors.ErrorCode.TOO_MANY_SIMULTANEOUS_QUERIES, True),
        (ch_errors.ErrorCode.MEMORY_LIMIT_EXCEEDED, True),
        (ch_errors.ErrorCode.TOO_MANY_PARTS, True),
        (ch_errors.ErrorCode.NOT_ENOUGH_SPACE, True),
        (516, True),  # AUTHENTICATION_FAILED (newer than asynch's table)
        (ch_errors.ErrorCode.UNKNOWN_TABLE, False),
        (ch_errors.ErrorCode.SYNTAX_ERROR, False),
        (ch_errors.ErrorCode.TYPE_MISMATCH, False),
    ],
)
def test_clickhouse_server_errors_by_code(code: int, outage: bool) -> None:
    error = ch_errors.ServerException("DB::Exception: ...", code)
    assert (classify(error) is not None) == outage


# -- Kafka (aiokafka) --------------------------------------------------------------------

KAFKA_CLASSES = list(exception_classes(kafka_errors))
KAFKA_ALSO_OUTAGES = {
    "KafkaTimeoutError",
    "KafkaUnavailableError",
    "BrokerNotAvailableError",
    "ReplicaNotAvailableError",
    "AuthenticationFailedError",
    "SaslAuthenticationFailed",
    "ProducerClosed",
    "ConsumerStoppedError",
}


@pytest.mark.parametrize("cls", KAFKA_CLASSES, ids=lambda c: c.__name__)
def test_every_aiokafka_error(cls: type[BaseException]) -> None:
    expected = bool(getattr(cls, "retriable", False)) or cls.__name__ in KAFKA_ALSO_OUTAGES
    outage = classify(build(cls))
    assert (outage is not None) == expected
    if outage is not None:
        assert outage.system == "Kafka"


def test_kafka_table_names_real_classes() -> None:
    names = {c.__name__ for c in KAFKA_CLASSES}
    assert names >= KAFKA_ALSO_OUTAGES
    assert {"KafkaConnectionError", "NoBrokersAvailable", "RequestTimedOutError"} <= names


# -- gRPC, the network, Python -----------------------------------------------------------


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "details", "")


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (rpc_error(grpc.StatusCode.UNAVAILABLE), True),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), True),
        (rpc_error(grpc.StatusCode.PERMISSION_DENIED), False),
        (rpc_error(grpc.StatusCode.INTERNAL), False),
        (TimeoutError(), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (BrokenPipeError(32, "Broken pipe"), True),
        (OSError(113, "No route to host"), True),
        (asyncio.IncompleteReadError(b"", 10), True),
        (TypeError("unsupported operand"), False),
        (KeyError("id"), False),
        (RuntimeError("no verdict of its own"), False),
        (Exception("plain"), False),
    ],
    ids=repr,
)
def test_grpc_network_and_python_errors(error: BaseException, outage: bool) -> None:
    assert (classify(error) is not None) == outage


# -- walking the chain -------------------------------------------------------------------


def test_a_wrapper_without_a_verdict_defers_to_its_cause() -> None:
    error = raised(RuntimeError("projector failed"), cause=ConnectionRefusedError())
    outage = classify(error)
    assert outage is not None and "refused" in outage.reason


def test_a_bug_raised_while_handling_an_outage_is_still_a_bug() -> None:
    empty: dict[str, int] = {}
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError:
            _ = empty["missing"]
    except KeyError as bug:
        assert bug.__context__ is not None
        assert classify(bug) is None


def test_exception_groups_and_cycles() -> None:
    group = BaseExceptionGroup("tasks", [ValueError("no"), TimeoutError()])
    assert classify(RuntimeError("x")) is None
    # ValueError is a bug verdict, but it is a member, not the outer link: the
    # first member with a verdict in breadth-first order decides.
    assert classify(group) is None
    assert classify(ExceptionGroup("tasks", [RuntimeError("x"), TimeoutError()])) is not None
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert [id(x) for x in chain(a)] == [id(a), id(b)]
    assert classify(a) is None


def test_pool_timeout_and_invalidated_connections() -> None:
    assert classify(sa_exc.TimeoutError("QueuePool limit reached")) is not None
    lost = sa_exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)
    assert classify(lost) is not None
    assert classify(sa_exc.ResourceClosedError("This result object is closed.")) is None


# -- naming the dependency and the gRPC status --------------------------------------------

READ_MODEL = Dependency("read model database", "PostgreSQL at 127.0.0.1:5433")


def test_dependency_error_names_the_dependency_and_never_the_traceback() -> None:
    error = READ_MODEL.error(
        wrapped_by_sqlalchemy(asyncpg.exceptions.CannotConnectNowError("starting up"))
    )
    assert isinstance(error, DependencyUnavailable)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.message == (
        "read model database (PostgreSQL at 127.0.0.1:5433) is unavailable: "
        "it is starting up (CannotConnectNowError); retry later"
    )
    assert "Traceback" not in error.message and "SELECT" not in error.message
    assert READ_MODEL.error(TypeError("bug")) is None


def test_while_known_down_the_message_says_when_it_is_tried_again() -> None:
    error = READ_MODEL.unavailable("it refused the connection", retry_in=1.2)
    assert error.message == (
        "read model database (PostgreSQL at 127.0.0.1:5433) is down; retrying in 2 s "
        "(unavailable: it refused the connection)"
    )
    assert READ_MODEL.timed_out(2).message.endswith("did not answer within 2.0s; retry later")


def test_status_of_falls_back_to_the_classifier_for_unnamed_outages() -> None:
    shutdown = asyncpg.exceptions.AdminShutdownError("terminating connection")
    code, message = errors.status_of(wrapped_by_sqlalchemy(shutdown))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message.startswith("PostgreSQL is unavailable: it is shutting down")
    assert errors.status_of(TypeError("bug")) == (
        grpc.StatusCode.INTERNAL,
        "internal error; see the service log",
    )


def test_describe_never_shows_a_statements_parameters() -> None:
    secret = "$2b$12$secrethashsecrethashsecrethashsecrethashsecrethash"
    bug = sa_exc.IntegrityError(
        "INSERT INTO auth_projections ...", {"password_hash": secret}, ValueError("duplicate")
    )
    assert secret in str(bug)  # what SQLAlchemy itself prints
    assert describe(bug) == "IntegrityError: duplicate"
    assert describe(raised(RuntimeError("x"), cause=TimeoutError())) == (
        "network is unavailable: it did not answer in time (TimeoutError)"
    )
    assert describe(READ_MODEL.timed_out(2)) == READ_MODEL.timed_out(2).message
