"""Reading well-known request metadata (gRPC headers) in one place."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
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


def correlation_ids(context: Any) -> tuple[str, str]:
    """(correlation id, causation id) of a call; a fresh correlation id if none came.

    Values are capped at 128 characters so a caller cannot bloat every event.
    """
    md = context.invocation_metadata()
    correlation = get(md, CORRELATION_ID)[:128] or str(uuid.uuid4())
    causation = get(md, CAUSATION_ID)[:128]
    return correlation, causation
