"""Is a failure "a dependency cannot serve right now" or a bug? One answer for every service.

A driver's error seldom arrives alone: SQLAlchemy puts asyncpg's
``CannotConnectNowError`` (PostgreSQL is starting up) inside its adapter's
error, inside a plain ``DBAPIError``; asyncio and our own code re-raise with
``from``. :func:`classify` walks the whole chain breadth first, outermost
first (``.orig`` of SQLAlchemy's wrappers, ``__cause__``, ``__context__``,
the members of an exception group) and the first link that has a verdict
decides:

* an :class:`Outage`: the dependency is down, restarting, hung, out of
  resources or refusing our credentials; the caller gets UNAVAILABLE with a
  reason naming the dependency (never a traceback) and may retry later;
* ``None``: a real internal error (a bug of ours such as a ``TypeError`` or
  SQL that does not match the schema, or corrupt data that needs a human);
  the caller gets INTERNAL and the details go to the log.

Outermost first means a bug raised while handling a connection error is
still a bug. Links without a verdict of their own (SQLAlchemy's generic
wrappers, ``RuntimeError``) defer to what they wrap.

Verdicts per driver (``tests/unit/service_kit/test_dependency_errors.py``
feeds every exception class of each through :func:`classify`):

* asyncpg: by SQLSTATE class: 08 connection, 53 insufficient resources,
  57 operator intervention (shutdown, starting up, statement timeout),
  58 system (I/O), 40 transaction rollback (serialization, deadlock), 28
  authorization, and 25006/25P03/25P04, 55006/55P03 are outages; the rest
  (data, integrity, syntax, undefined objects, XX internal/corruption) are
  internal. Client-side: a closed connection is an outage, a misuse is not.
* SQLite (sqlite3 via aiosqlite): busy/locked, I/O, full, cannot open,
  read-only, interrupted are outages; corrupt files and SQL errors are not.
* ClickHouse (asynch): network errors, timeouts, a closed connection and
  the server's transient codes (too many queries or parts, memory, disk,
  read-only, credentials, keeper) are outages.
* Kafka (aiokafka): every error aiokafka marks ``retriable``, timeouts,
  unavailable brokers, refused credentials and a stopped client.
* gRPC (a call to another service): UNAVAILABLE and DEADLINE_EXCEEDED.
* The network: timeouts, refused or broken connections, name resolution,
  other ``OSError``; a peer closing the stream (``EOFError``).

Services name the dependency a failure belongs to with a
:class:`Dependency`, whose :meth:`Dependency.error` turns an exception into
a :class:`DependencyUnavailable` (a ``ServiceError`` with UNAVAILABLE) or
``None``.
"""

from __future__ import annotations

import errno
import math
import socket
import sqlite3
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import grpc

from service_kit.error_details import DEPENDENCY_UNAVAILABLE, Details
from service_kit.service_error import ServiceError

__all__ = [
    "Dependency",
    "DependencyUnavailable",
    "Outage",
    "chain",
    "classify",
    "describe",
    "register",
]

_MAX_LINKS: Final = 32


@dataclass(frozen=True, slots=True)
class Outage:
    """Why a dependency cannot serve right now; safe to show to a caller.

    ``reason`` completes "<dependency> is unavailable: ...", e.g. ``"it is
    starting up (CannotConnectNowError)"``; ``system`` names the kind of
    server ("PostgreSQL", "ClickHouse", ...); ``error`` is the class name of
    the link that decided.
    """

    reason: str
    system: str
    error: str


class _Internal:
    """The verdict "a real internal error" (a sentinel, distinct from "no verdict")."""


_INTERNAL: Final = _Internal()
_Verdict = Outage | _Internal | None


def _loaded(module: str) -> Any:
    """A driver's module if this process imported it, else None.

    A driver's exception cannot exist before its module is imported, so the
    rules look drivers up here instead of importing them: a process that uses
    none (the gateway) does not pay for loading them.
    """
    return sys.modules.get(module)


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps, outermost first, each once (at most 32)."""
    seen: set[int] = set()
    queue: deque[BaseException] = deque([exc])
    while queue and len(seen) < _MAX_LINKS:
        link = queue.popleft()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)  # SQLAlchemy's DBAPIError and its adapters
        for inner in (orig, link.__cause__, link.__context__):
            if isinstance(inner, BaseException):
                queue.append(inner)
        if isinstance(link, BaseExceptionGroup):
            queue.extend(link.exceptions)


def classify(exc: BaseException) -> Outage | None:
    """An :class:`Outage` when ``exc`` means a dependency is unavailable, else None (a bug)."""
    for link in chain(exc):
        verdict = _verdict(link)
        if isinstance(verdict, Outage):
            return verdict
        if verdict is _INTERNAL:
            return None
    return None


def describe(exc: BaseException) -> str:
    """One line for a log or a health report: the outage's reason, or the error itself.

    Never a SQLAlchemy error's text, which carries the statement's parameters
    (e-mails, password hashes): the driver's error it wraps stands for it.
    """
    if isinstance(exc, DependencyUnavailable):
        return exc.message
    outage = classify(exc)
    if outage is not None:
        return f"{outage.system} is unavailable: {outage.reason}"
    inner = getattr(exc, "orig", None)
    text = _safe_str(inner if isinstance(inner, BaseException) else exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_registered: list[tuple[type[BaseException], str, str]] = []


def register(exc_type: type[BaseException], *, reason: str, system: str) -> None:
    """Declares another exception type an outage (e.g. the store engine's
    ``StorageUnavailable``); checked before the drivers' rules."""
    _registered.append((exc_type, reason, system))


def _verdict(link: BaseException) -> _Verdict:
    for exc_type, reason, system in _registered:
        if isinstance(link, exc_type):
            return Outage(f"{reason} ({type(link).__name__})", system, type(link).__name__)
    if isinstance(link, DependencyUnavailable):
        return Outage(link.reason, link.dependency.name, type(link).__name__)
    for rule in _RULES:
        verdict = rule(link)
        if verdict is not None:
            return verdict
    return None


def _safe_str(link: BaseException) -> str:
    """``str(link)``; some drivers' ``__str__`` fails on odd arguments."""
    try:
        return str(link)
    except Exception:
        return ""


def _text(link: BaseException) -> str:
    return _safe_str(link).lower()


def _outage(link: BaseException, reason: str, system: str) -> Outage:
    name = type(link).__name__
    return Outage(f"{reason} ({name})", system, name)


# -- SQLAlchemy -------------------------------------------------------------------------


def _sqlalchemy(link: BaseException) -> _Verdict:
    sa_exc = _loaded("sqlalchemy.exc")
    if sa_exc is None or not isinstance(link, sa_exc.SQLAlchemyError):
        return None
    if isinstance(link, sa_exc.TimeoutError):
        return _outage(link, "no pooled connection became free in time", "SQLAlchemy")
    if isinstance(link, sa_exc.DBAPIError):
        if link.connection_invalidated:
            return _outage(link, "the connection was lost", "SQLAlchemy")
        return None  # a wrapper: the driver's error in .orig decides
    return _INTERNAL  # misuse of SQLAlchemy (closed result, pending rollback, ...)


# -- asyncpg (PostgreSQL) ---------------------------------------------------------------

# SQLSTATE classes (first two characters) and codes that mean "not now".
_PG_OUTAGE_CLASSES: Final[dict[str, str]] = {
    "08": "the connection failed or broke",
    "28": "it refuses our credentials",
    "40": "it rolled the transaction back (serialization failure or deadlock)",
    "53": "it is out of resources (disk, memory or connections)",
    "57": "it is shutting down, starting up or cancelled the statement",
    "58": "it has a system or I/O error",
}
_PG_OUTAGE_CODES: Final[dict[str, str]] = {
    "57014": "the statement timed out",
    "57P01": "it is shutting down",
    "57P02": "it crashed and is restarting",
    "57P03": "it is starting up",
    "25006": "it is read-only (a standby)",
    "25P03": "an idle transaction timed out",
    "25P04": "the transaction timed out",
    "55006": "an object is in use",
    "55P03": "a lock was not available in time",
}
# In an outage class, but a fact about our data, not about the server's state.
_PG_INTERNAL_CODES: Final = frozenset({"40002"})  # integrity violation found at commit
_PG_CLOSED_MARKERS: Final = ("connection is closed", "connection was closed", "pool is closing")


def _asyncpg(link: BaseException) -> _Verdict:
    asyncpg = _loaded("asyncpg")
    if asyncpg is None:
        return None
    if isinstance(link, asyncpg.PostgresError):
        state = str(getattr(link, "sqlstate", "") or "")
        if state in _PG_INTERNAL_CODES:
            return _INTERNAL
        reason = _PG_OUTAGE_CODES.get(state) or _PG_OUTAGE_CLASSES.get(state[:2])
        return _outage(link, reason, "PostgreSQL") if reason else _INTERNAL
    if isinstance(link, asyncpg.exceptions.TargetServerAttributeNotMatched):
        return _outage(link, "no server with the required role (primary/standby)", "PostgreSQL")
    if isinstance(
        link, asyncpg.exceptions.ProtocolError | asyncpg.exceptions.OutdatedSchemaCacheError
    ):
        return _outage(link, "the connection is out of step; retry on a new one", "PostgreSQL")
    if isinstance(link, asyncpg.exceptions.InternalClientError):
        return _INTERNAL
    if isinstance(
        link,
        asyncpg.exceptions.ClientConfigurationError
        | asyncpg.exceptions.UnsupportedClientFeatureError
        | asyncpg.exceptions.UnsupportedServerFeatureError,
    ):
        return _INTERNAL
    if isinstance(link, asyncpg.InterfaceError):
        text = _text(link)
        if any(marker in text for marker in _PG_CLOSED_MARKERS):
            return _outage(link, "the connection is closed", "PostgreSQL")
        return _INTERNAL  # misuse: another operation in progress, released connection, ...
    return None


# -- SQLite (sqlite3, through aiosqlite) ------------------------------------------------

_SQLITE_OUTAGE_CODES: Final[dict[int, str]] = {
    sqlite3.SQLITE_BUSY: "the database is locked by another writer",
    sqlite3.SQLITE_LOCKED: "a table is locked",
    sqlite3.SQLITE_NOMEM: "it is out of memory",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_INTERRUPT: "the statement was interrupted",
    sqlite3.SQLITE_IOERR: "it has a disk I/O error",
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
    sqlite3.SQLITE_PROTOCOL: "the lock protocol failed",
}
# Errors built without an error code (older paths, tests): by message.
_SQLITE_OUTAGE_MESSAGES: Final[tuple[tuple[str, str], ...]] = (
    ("database is locked", "the database is locked by another writer"),
    ("database table is locked", "a table is locked"),
    ("disk i/o error", "it has a disk I/O error"),
    ("database or disk is full", "the disk is full"),
    ("unable to open database file", "the database file cannot be opened"),
    ("readonly database", "the database is read-only"),
    ("interrupted", "the statement was interrupted"),
    ("closed database", "the connection is closed"),
)
# aiosqlite's own words for a connection that is gone (raised as ValueError).
_AIOSQLITE_CLOSED: Final = ("no active connection", "connection closed")


def _sqlite(link: BaseException) -> _Verdict:
    if isinstance(link, ValueError) and _text(link) in _AIOSQLITE_CLOSED:
        return _outage(link, "the connection is closed", "SQLite")
    if not isinstance(link, sqlite3.Error):
        return None
    code = getattr(link, "sqlite_errorcode", None)
    if isinstance(code, int):
        reason = _SQLITE_OUTAGE_CODES.get(code & 0xFF)
        return _outage(link, reason, "SQLite") if reason else _INTERNAL
    text = _text(link)
    for marker, reason in _SQLITE_OUTAGE_MESSAGES:
        if marker in text:
            return _outage(link, reason, "SQLite")
    return _INTERNAL


# -- ClickHouse (asynch) ----------------------------------------------------------------

# ClickHouse's error codes (stable across releases; asynch's own table lacks
# the newer ones) that mean "not now": network and socket trouble, timeouts,
# too much load, out of memory or disk, read-only, credentials, keeper.
_CH_OUTAGE_CODES: Final[frozenset[int]] = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        95,  # CANNOT_READ_FROM_SOCKET
        96,  # CANNOT_WRITE_TO_SOCKET
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        164,  # READONLY
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        195,  # IP_ADDRESS_NOT_ALLOWED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        225,  # NO_ZOOKEEPER
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        516,  # AUTHENTICATION_FAILED
        999,  # KEEPER_EXCEPTION
    }
)


def _clickhouse(link: BaseException) -> _Verdict:
    ch_errors = _loaded("asynch.errors")
    if ch_errors is None or not isinstance(link, ch_errors.Error):
        return None
    if isinstance(link, ch_errors.NetworkError | ch_errors.SocketTimeoutError):
        return _outage(link, "it cannot be reached or did not answer in time", "ClickHouse")
    if isinstance(link, ch_errors.OperationalError | ch_errors.AsynchPoolError):
        return _outage(link, "the connection failed or broke", "ClickHouse")
    code = getattr(link, "code", None)
    if isinstance(code, int) and code in _CH_OUTAGE_CODES:
        return _outage(link, f"it answered with a transient error (code {code})", "ClickHouse")
    return _INTERNAL


# -- Kafka (aiokafka) -------------------------------------------------------------------

# Not marked retriable by aiokafka, but "not now" all the same.
_KAFKA_OUTAGE_NAMES: Final = (
    "KafkaTimeoutError",
    "KafkaUnavailableError",
    "BrokerNotAvailableError",
    "ReplicaNotAvailableError",
    "AuthenticationFailedError",
    "SaslAuthenticationFailed",
    "ProducerClosed",
    "ConsumerStoppedError",
)


def _kafka(link: BaseException) -> _Verdict:
    kafka_errors = _loaded("aiokafka.errors")
    if kafka_errors is None:
        return None
    outages = tuple(
        kind for name in _KAFKA_OUTAGE_NAMES if (kind := getattr(kafka_errors, name, None))
    )
    if isinstance(link, outages):
        return _outage(link, "the broker cannot be reached or refused the request", "Kafka")
    if isinstance(link, kafka_errors.KafkaError):
        if getattr(link, "retriable", False):
            return _outage(link, "the broker cannot serve this right now", "Kafka")
        return _INTERNAL
    return None


# -- gRPC (a call to another of our services) -------------------------------------------


def _grpc(link: BaseException) -> _Verdict:
    if not isinstance(link, grpc.aio.AioRpcError):
        return None
    code = link.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return Outage("the service is unreachable or unavailable", "gRPC", code.name)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Outage("the service did not answer in time", "gRPC", code.name)
    return _INTERNAL


# -- the network and Python itself ------------------------------------------------------

_PROGRAMMING_ERRORS: Final[tuple[type[BaseException], ...]] = (
    TypeError,
    AttributeError,
    NameError,
    LookupError,
    ValueError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    ArithmeticError,
)


def _network(link: BaseException) -> _Verdict:
    if isinstance(link, TimeoutError):
        return _outage(link, "it did not answer in time", "network")
    if isinstance(link, ConnectionRefusedError):
        return _outage(link, "it refused the connection", "network")
    if isinstance(link, ConnectionError):
        return _outage(link, "the connection broke", "network")
    if isinstance(link, socket.gaierror):
        return _outage(link, "its address cannot be resolved", "network")
    if isinstance(link, OSError):
        what = errno.errorcode.get(link.errno or 0, "") if link.errno else ""
        return _outage(link, f"an OS or network error{f' ({what})' if what else ''}", "network")
    if isinstance(link, EOFError):  # asyncio.IncompleteReadError included
        return _outage(link, "it closed the connection", "network")
    if isinstance(link, _PROGRAMMING_ERRORS):
        return _INTERNAL
    return None


_RULES: Final[tuple[Callable[[BaseException], _Verdict], ...]] = (
    _sqlalchemy,
    _asyncpg,
    _sqlite,
    _clickhouse,
    _kafka,
    _grpc,
    _network,
)


# -- naming the dependency ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dependency:
    """A dependency as callers and operators should read it.

    ``name`` says what it is for ("read model database"), ``where`` what and
    where it is ("PostgreSQL at 127.0.0.1:5433"); no credentials.
    """

    name: str
    where: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.where})" if self.where else self.name

    def unavailable(self, reason: str, *, retry_in: float | None = None) -> DependencyUnavailable:
        return DependencyUnavailable(self, reason, retry_in=retry_in)

    def timed_out(self, seconds: float) -> DependencyUnavailable:
        return DependencyUnavailable(self, f"it did not answer within {seconds:.1f}s")

    def error(self, exc: BaseException) -> DependencyUnavailable | None:
        """The UNAVAILABLE answer for ``exc``, or None when ``exc`` is a real internal error."""
        if isinstance(exc, DependencyUnavailable):
            return exc
        outage = classify(exc)
        return None if outage is None else DependencyUnavailable(self, outage.reason)


class DependencyUnavailable(ServiceError):
    """UNAVAILABLE naming the dependency and why; ``retry_in`` while it is known down.

    Messages: ``"<dependency> is unavailable: <reason>; retry later"``, or
    while a circuit breaker holds calls off, ``"<dependency> is down;
    retrying in N s (unavailable: <reason>)"``.
    """

    def __init__(
        self, dependency: Dependency, reason: str, *, retry_in: float | None = None
    ) -> None:
        if retry_in is None:
            message = f"{dependency.describe()} is unavailable: {reason}; retry later"
        else:
            seconds = max(math.ceil(retry_in), 1)
            message = (
                f"{dependency.describe()} is down; retrying in {seconds} s (unavailable: {reason})"
            )
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, message, unavailable_details(dependency.name, retry_in)
        )
        self.dependency = dependency
        self.reason = reason
        self.retry_in = retry_in


def unavailable_details(dependency: str, retry_in: float | None = None) -> Details:
    """ErrorInfo naming the dependency that is down, and RetryInfo: when it is
    held off, the time left; else a second (a hint; the outage may last)."""
    return Details(
        reason=DEPENDENCY_UNAVAILABLE,
        metadata={"dependency": dependency},
        retry_after=max(retry_in, 1.0) if retry_in is not None else 1.0,
    )
