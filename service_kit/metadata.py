"""Reading well-known request metadata (gRPC headers) in one place."""

from __future__ import annotations

import contextvars
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

CORRELATION_ID = "x-correlation-id"
CAUSATION_ID = "x-causation-id"


def get(metadata: Iterable[Any] | None, key: str) -> str:
    """The first value of a metadata key, or "" (keys are lower-case in gRPC)."""
    for item in metadata or ():
        k, v = item[0], item[1]
        if k == key:
            return v if isinstance(v, str) else v.decode("utf-8", "replace")
    return ""


# The current call's metadata, set by the first server interceptor in the
# call's own context; reading it there is cheaper than asking the context
# again (grpc.aio rebuilds the tuple on every invocation_metadata() call).
_call_metadata: contextvars.ContextVar[Sequence[Any] | None] = contextvars.ContextVar(
    "call_metadata", default=None
)


def remember_call_metadata(metadata: Sequence[Any] | None) -> None:
    """Called by the first interceptor with the call's metadata (see :func:`call_metadata`)."""
    _call_metadata.set(metadata or ())


def call_metadata(context: Any) -> Sequence[Any]:
    """The call's metadata: the interceptor's copy, else the context's own."""
    remembered = _call_metadata.get()
    if remembered is not None:
        return remembered
    return tuple(context.invocation_metadata() or ())


def new_correlation_id() -> str:
    """A random version-4 UUID string for tracing: a call's correlation id when
    none came, a command's id (its events' causation id).

    An id to group log lines and events by, not a secret: drawn from
    ``random`` rather than ``os.urandom`` (a system call per call).
    """
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def trace_ids(correlation: str, causation: str) -> tuple[str, str]:
    """(correlation id, causation id) as stored: a fresh correlation id if none
    came, both capped at 128 characters so a caller cannot bloat every event."""
    return correlation[:128] or new_correlation_id(), causation[:128]


def correlation_ids(context: Any) -> tuple[str, str]:
    """:func:`trace_ids` of a call's ``x-correlation-id`` / ``x-causation-id``."""
    md = call_metadata(context)
    return trace_ids(get(md, CORRELATION_ID), get(md, CAUSATION_ID))
